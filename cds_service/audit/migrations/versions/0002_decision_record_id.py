"""Decisions carry the record id the writer gave them: replays from the local spool are stored
once (unique), and rows stored before this migration keep a null id.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_decision") as table:
        table.add_column(sa.Column("record_id", sa.String(36), nullable=True))
    op.create_index("ix_audit_decision_record_id", "audit_decision", ["record_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_audit_decision_record_id", "audit_decision")
    with op.batch_alter_table("audit_decision") as table:
        table.drop_column("record_id")
