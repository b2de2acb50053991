"""Schema migrations with Alembic, run by :meth:`memp_core.store.Store.init`.

A new database gets the current tables and is stamped at the newest revision; an existing
one is upgraded in place, so `memp init` on an old database keeps its data.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# The first released schema; databases created before Alembic was added are at this one.
BASELINE = "0001"


def alembic_config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None, "no migration scripts shipped"
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Bring the schema to the newest revision; returns what was done."""
    with engine.begin() as conn:
        tables = set(inspect(conn).get_table_names())
        current = current_revision(conn)
        if current == head_revision():
            return "up to date"
        cfg = alembic_config(conn)
        if not tables - {"alembic_version"}:
            SQLModel.metadata.create_all(conn)
            command.stamp(cfg, "head")
            return "created"
        if current is None:
            command.stamp(cfg, BASELINE)
        command.upgrade(cfg, "head")
        return "upgraded"
