"""Postgres: expression indexes on the revisions' key facts, for facts and hybrid retrieval

``facts`` and ``hybrid`` retrieval look for current revisions sharing a task type, object,
receptacle or tool with the query (``facts ->> 'task_type' = ...``); without an index that is
a scan of every revision. One B-tree per key lets Postgres combine them (BitmapOr). SQLite
keeps its in-memory index and needs none. The key names are frozen here.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 05:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = ("task_type", "object", "receptacle", "tool")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for key in KEYS:
        op.execute(
            f"CREATE INDEX IF NOT EXISTS ix_revision_fact_{key} "
            f"ON procedurerevision ((facts ->> '{key}'))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for key in KEYS:
        op.execute(f"DROP INDEX IF EXISTS ix_revision_fact_{key}")
