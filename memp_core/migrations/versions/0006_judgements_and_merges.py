"""Judgements of runs without a verdict, and procedures merged into another

- ``judgement``: a judge's verdict, confidence and rationale on a trajectory, with who ran it
  and a person's review (confirmed / overridden). The trajectory's recorded outcome is not
  touched.
- ``procedure.merged_into_id``: the kept procedure a reviewed merge folded this one into
  (status ``merged``). NULL for every existing procedure.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 06:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("procedure", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merged_into_id", sa.Integer(), nullable=True))
        batch_op.create_index("ix_procedure_merged_into_id", ["merged_into_id"])
    text = sqlmodel.sql.sqltypes.AutoString
    when = sqlmodel.sql.sqltypes.UTCDateTime
    op.create_table(
        "judgement",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("trajectory_id", sa.Integer(), sa.ForeignKey("trajectory.id"), nullable=False),
        sa.Column("verdict", text(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("rationale", text(), nullable=False),
        sa.Column("backend", text(), nullable=False),
        sa.Column("model", text(), nullable=False),
        sa.Column("actor", text(), nullable=False),
        sa.Column("created_at", when(), nullable=False),
        sa.Column("review", text(), nullable=True),
        sa.Column("reviewed_verdict", text(), nullable=True),
        sa.Column("reviewed_by", text(), nullable=True),
        sa.Column("reviewed_at", when(), nullable=True),
    )
    for column in ("trajectory_id", "verdict", "created_at", "review"):
        op.create_index(f"ix_judgement_{column}", "judgement", [column])


def downgrade() -> None:
    op.drop_table("judgement")
    with op.batch_alter_table("procedure", schema=None) as batch_op:
        batch_op.drop_index("ix_procedure_merged_into_id")
        batch_op.drop_column("merged_into_id")
