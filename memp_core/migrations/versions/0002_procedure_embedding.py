"""procedure.embedding: the current revision's vector, searched in the database on Postgres

Adds ``procedure.embedding`` (pgvector ``vector(384)`` with an HNSW cosine index on
Postgres, a BLOB on SQLite) and fills it from each procedure's current revision. The
dimension and index parameters are frozen here, whatever models.py says later.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 10:00:00
"""

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DIM = 384
BATCH = 2000
HNSW_INDEX = (
    "CREATE INDEX ix_procedure_embedding_hnsw ON procedure "
    "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
)


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")
        op.execute(f"ALTER TABLE procedure ADD COLUMN embedding vector({DIM})")
    else:
        with op.batch_alter_table("procedure", schema=None) as batch_op:
            batch_op.add_column(sa.Column("embedding", sa.LargeBinary(), nullable=True))
    backfill(bind, postgres)
    if postgres:  # built after the backfill: one bulk build is far faster than row inserts
        op.execute(HNSW_INDEX)


def backfill(bind: sa.engine.Connection, postgres: bool) -> None:
    """Copy each procedure's current-revision embedding, in id order, a batch at a time."""
    read = sa.text(
        "SELECT p.id, r.embedding FROM procedure p "
        "JOIN procedurerevision r ON r.id = p.current_revision_id "
        "WHERE p.id > :after AND r.embedding IS NOT NULL ORDER BY p.id LIMIT :n"
    )
    value = "CAST(:e AS vector)" if postgres else ":e"
    write = sa.text(f"UPDATE procedure SET embedding = {value} WHERE id = :id")
    after = 0
    while rows := bind.execute(read, {"after": after, "n": BATCH}).all():
        after = rows[-1][0]
        params = [
            {"id": pid, "e": _vector_text(blob) if postgres else bytes(blob)}
            for pid, blob in rows
            if len(blob) == 4 * DIM  # other models' vectors stay unsearchable, not an error
        ]
        if params:
            bind.execute(write, params)


def _vector_text(blob: bytes) -> str:
    # repr of each float32 widened to float64 parses back to the same float32 in pgvector
    return "[" + ",".join(map(repr, np.frombuffer(blob, dtype="<f4").tolist())) + "]"


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_procedure_embedding_hnsw")
    with op.batch_alter_table("procedure", schema=None) as batch_op:
        batch_op.drop_column("embedding")
