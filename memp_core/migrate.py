"""Schema migrations with Alembic, run by :meth:`memp_core.store.Store.init`.

A new database gets the current tables and is stamped at the newest revision; an existing
one is upgraded in place, so `memp init` on an old database keeps its data. Postgres needs
the pgvector extension (the searchable embedding column); it is created when missing.

Several processes may open the same database at once: the upgrade runs under the write
lock (SQLite ``BEGIN IMMEDIATE``, a Postgres advisory lock) and re-checks the schema version
there, so exactly one of them creates or upgrades and the others find it up to date.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

from memp_core.errors import StoreError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# The first released schema; databases created before Alembic was added are at this one.
BASELINE = "0001"
_LOCK_KEY = 0x6D656D70  # "memp": the advisory lock that serialises upgrades on Postgres


def alembic_config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def scripts() -> ScriptDirectory:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg)


def head_revision() -> str:
    head = scripts().get_current_head()
    assert head is not None, "no migration scripts shipped"
    return head


def check_known(engine: Engine, current: str | None) -> None:
    """Refuse a database whose schema revision this release does not know (a newer one):
    reading or writing it with older tables could lose what the newer release stores."""
    if current is None:
        return
    try:
        scripts().get_revision(current)
    except CommandError:
        where = engine.url.render_as_string(hide_password=True)
        raise StoreError(
            f"database {where} has schema revision {current!r}, which this version of Memp "
            f"Studio does not know (its newest is {head_revision()!r}): it was written by a "
            "newer release; upgrade memp-studio to open it"
        ) from None


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_to(engine: Engine, revision: str) -> None:
    """Run the migrations up to ``revision`` on an empty or older database (used by tests
    that build an old-schema database to upgrade)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            ensure_pgvector(conn)
        command.upgrade(alembic_config(conn), revision)


def upgrade(engine: Engine, write_engine: Engine | None = None) -> str:
    """Bring the schema to the newest revision; returns what was done.

    ``write_engine`` opens write transactions (on SQLite: ``BEGIN IMMEDIATE``); the cheap
    check runs first without the lock, so opening an up-to-date database never waits.
    """
    head = head_revision()
    with engine.connect() as conn:
        current = current_revision(conn)
    if current == head:
        return "up to date"
    check_known(engine, current)
    with (write_engine or engine).connect() as conn, _foreign_keys_checked_at_end(conn):
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            current = current_revision(conn)
            if current == head:
                return "up to date"
            if conn.dialect.name == "postgresql":
                ensure_pgvector(conn)
            tables = set(inspect(conn).get_table_names())
            cfg = alembic_config(conn)
            if not tables - {"alembic_version"}:
                SQLModel.metadata.create_all(conn)
                command.stamp(cfg, "head")
                return "created"
            if current is None:
                command.stamp(cfg, BASELINE)
            command.upgrade(cfg, "head")
            _check_foreign_keys(conn)
            return "upgraded"


@contextmanager
def _foreign_keys_checked_at_end(conn: Connection) -> Iterator[None]:
    """On a SQLite file, turn foreign-key enforcement off for the upgrade's transaction.

    SQLite changes a column (e.g. NOT NULL) by copying its table, dropping the old one and
    renaming the copy; with enforcement on, dropping a table that other rows point at fails,
    even though the copy takes its place in the same transaction. The pragma only works
    outside a transaction, so it is set on the driver's connection before ``BEGIN``, and
    :func:`_check_foreign_keys` verifies every reference before the commit instead.
    """
    raw = conn.connection.driver_connection
    if conn.dialect.name != "sqlite" or getattr(raw, "isolation_level", "") is not None:
        yield  # Postgres, or SQLite in memory (always created fresh, never altered)
        return
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def _check_foreign_keys(conn: Connection) -> None:
    if conn.dialect.name != "sqlite":
        return
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        table, rowid, parent, _ = broken[0]
        raise StoreError(
            f"the schema upgrade would leave {len(broken)} row(s) pointing at missing rows "
            f"(first: {table} row {rowid} -> {parent}); nothing was changed"
        )


def ensure_pgvector(conn: Connection) -> None:
    """Create the pgvector extension if this database lacks it, or say how to get it."""
    found = conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).first()
    if found is not None:
        return
    try:
        with conn.begin_nested():
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
    except DBAPIError as exc:
        raise StoreError(
            "Postgres needs the pgvector extension for memory search and this database does "
            f"not have it ({str(exc.orig).strip()}); install pgvector on the server and run "
            "CREATE EXTENSION vector as a superuser, then `memp init` again"
        ) from exc
