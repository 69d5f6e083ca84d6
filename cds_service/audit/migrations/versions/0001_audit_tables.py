"""Audit tables: decisions, evaluations, criteria, cards, feedback.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

from cds_service.audit.models import Id, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_decision",
        sa.Column("id", Id, primary_key=True),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("hook_instance", sa.String(64), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("hook", sa.String(32), nullable=False),
        sa.Column("client_iss", sa.String(512), nullable=True),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("orders", sa.JSON(), nullable=False),
        sa.Column("data_source", sa.String(16), nullable=False),
        sa.Column("latency_ms", sa.Double(), nullable=False),
    )
    op.create_index("ix_audit_decision_recorded_at", "audit_decision", ["recorded_at"])
    op.create_index("ix_audit_decision_hook_instance", "audit_decision", ["hook_instance"])
    op.create_index("ix_audit_decision_patient_id", "audit_decision", ["patient_id"])

    op.create_table(
        "audit_evaluation",
        sa.Column("id", Id, primary_key=True),
        sa.Column(
            "decision_id",
            Id,
            sa.ForeignKey("audit_decision.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("order_ref", sa.String(140), nullable=False),
        sa.Column("service", sa.String(16), nullable=False),
        sa.Column("policy_id", sa.String(64), nullable=False),
        sa.Column("policy_version", sa.String(32), nullable=False),
        sa.Column("determination", sa.String(32), nullable=False),
        sa.Column("card_uuid", sa.String(64), nullable=True),
        sa.Column("coverage_assertion_id", sa.String(64), nullable=True),
    )
    for column in ("decision_id", "policy_id", "determination", "card_uuid"):
        op.create_index(f"ix_audit_evaluation_{column}", "audit_evaluation", [column])

    op.create_table(
        "audit_criterion",
        sa.Column("id", Id, primary_key=True),
        sa.Column(
            "evaluation_id",
            Id,
            sa.ForeignKey("audit_evaluation.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("criterion_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
    )
    op.create_index("ix_audit_criterion_evaluation_id", "audit_criterion", ["evaluation_id"])

    op.create_table(
        "audit_card",
        sa.Column("id", Id, primary_key=True),
        sa.Column(
            "decision_id",
            Id,
            sa.ForeignKey("audit_decision.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("uuid", sa.String(64), nullable=False),
        sa.Column("suggestion_uuids", sa.JSON(), nullable=False),
    )
    op.create_index("ix_audit_card_decision_id", "audit_card", ["decision_id"])
    op.create_index("ix_audit_card_uuid", "audit_card", ["uuid"])

    op.create_table(
        "audit_feedback",
        sa.Column("id", Id, primary_key=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("client_iss", sa.String(512), nullable=True),
        sa.Column("card_uuid", sa.String(128), nullable=False),
        sa.Column(
            "decision_id",
            Id,
            sa.ForeignKey("audit_decision.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("outcome_timestamp", UTCDateTime(), nullable=False),
        sa.Column("accepted_suggestions", sa.JSON(), nullable=False),
        sa.Column("reason_system", sa.String(256), nullable=True),
        sa.Column("reason_code", sa.String(64), nullable=True),
        sa.Column("reason_display", sa.String(256), nullable=True),
        sa.Column("user_comment", sa.Text(), nullable=True),
    )
    for column in ("received_at", "card_uuid", "decision_id"):
        op.create_index(f"ix_audit_feedback_{column}", "audit_feedback", [column])


def downgrade() -> None:
    for table in (
        "audit_feedback",
        "audit_card",
        "audit_criterion",
        "audit_evaluation",
        "audit_decision",
    ):
        op.drop_table(table)
