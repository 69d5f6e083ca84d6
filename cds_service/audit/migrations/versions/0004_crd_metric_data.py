"""CRDMetricData per call (Da Vinci CRD metrics.md, metric-1): the payer, the CRD version
answered, the HTTP status, token use and where each prefetch key's data came from on the
decision; the coverage information returned per evaluation; and an index to look a decision up
by its coverage-assertion-id.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_decision") as batch:
        batch.add_column(sa.Column("payer", sa.String(64), nullable=True))
        batch.add_column(sa.Column("crd_version", sa.String(8), nullable=True))
        batch.add_column(sa.Column("http_status", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("token_use", sa.String(16), nullable=True))
        batch.add_column(sa.Column("sources", sa.JSON(none_as_null=True), nullable=True))
        batch.create_index("ix_audit_decision_payer", ["payer"])
    with op.batch_alter_table("audit_evaluation") as batch:
        batch.add_column(sa.Column("coverage_info", sa.JSON(none_as_null=True), nullable=True))
        batch.create_index(
            "ix_audit_evaluation_coverage_assertion_id", ["coverage_assertion_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_evaluation") as batch:
        batch.drop_index("ix_audit_evaluation_coverage_assertion_id")
        batch.drop_column("coverage_info")
    with op.batch_alter_table("audit_decision") as batch:
        batch.drop_index("ix_audit_decision_payer")
        for column in ("sources", "token_use", "http_status", "crd_version", "payer"):
            batch.drop_column(column)
