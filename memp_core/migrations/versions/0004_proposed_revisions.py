"""procedure.proposed_revision_id: a revision waiting for review beside the served one

An approved procedure keeps serving its current (approved) revision while a reflection, a
merge or an agent's proposal waits for a person; accepting it makes it current. NULL for
every existing procedure.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 04:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("procedure", schema=None) as batch_op:
        batch_op.add_column(sa.Column("proposed_revision_id", sa.Integer(), nullable=True))
        batch_op.create_index("ix_procedure_proposed_revision_id", ["proposed_revision_id"])


def downgrade() -> None:
    with op.batch_alter_table("procedure", schema=None) as batch_op:
        batch_op.drop_index("ix_procedure_proposed_revision_id")
        batch_op.drop_column("proposed_revision_id")
