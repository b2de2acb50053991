"""Unknown outcomes, and agents that connect live: API keys, feedback, reporting agents

- ``trajectory.success`` becomes nullable: NULL is an outcome nobody recorded (unknown).
  Existing rows keep their value; imports that assumed success are relabelled by the code
  that reads ``facts.outcome``, not here (a migration does not guess).
- ``trajectory.reporting_agent`` and ``trajectory.idempotency_key`` (unique together): who
  reported a run over `memp serve`, and the key that makes a repeated report a no-op.
- ``retrieval.agent``: the API key's agent that asked.
- ``apikey`` (salted hashes only) and ``feedback`` tables.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 04:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite changes success's NOT NULL by copying the table: memp_core.migrate runs this
    # with foreign keys checked once at the end (other tables point at trajectory meanwhile).
    with op.batch_alter_table("trajectory", schema=None) as batch_op:
        batch_op.alter_column("success", existing_type=sa.Boolean(), nullable=True)
        batch_op.add_column(
            sa.Column(
                "reporting_agent",
                sqlmodel.sql.sqltypes.AutoString(),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(
            sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.create_index("ix_trajectory_reporting_agent", ["reporting_agent"])
        batch_op.create_unique_constraint(
            "uq_trajectory_report", ["reporting_agent", "idempotency_key"]
        )
    with op.batch_alter_table("retrieval", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "agent", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=""
            )
        )
        batch_op.create_index("ix_retrieval_agent", ["agent"])
    op.create_table(
        "apikey",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("agent", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=True),
        sa.Column("prefix", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("salt", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("key_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("last_used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("revoked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    )
    op.create_index("ix_apikey_agent", "apikey", ["agent"])
    op.create_index("ix_apikey_prefix", "apikey", ["prefix"], unique=True)
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("procedure_id", sa.Integer(), sa.ForeignKey("procedure.id"), nullable=False),
        sa.Column(
            "revision_id", sa.Integer(), sa.ForeignKey("procedurerevision.id"), nullable=False
        ),
        sa.Column("rating", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("trajectory_id", sa.Integer(), sa.ForeignKey("trajectory.id"), nullable=True),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    )
    for column in ("procedure_id", "revision_id", "actor", "created_at"):
        op.create_index(f"ix_feedback_{column}", "feedback", [column])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("apikey")
    with op.batch_alter_table("retrieval", schema=None) as batch_op:
        batch_op.drop_index("ix_retrieval_agent")
        batch_op.drop_column("agent")
    with op.batch_alter_table("trajectory", schema=None) as batch_op:
        batch_op.drop_constraint("uq_trajectory_report", type_="unique")
        batch_op.drop_index("ix_trajectory_reporting_agent")
        batch_op.drop_column("idempotency_key")
        batch_op.drop_column("reporting_agent")
        batch_op.alter_column("success", existing_type=sa.Boolean(), nullable=False)
