"""The JWT replay cache shared by every worker: one row per (issuer, jti) seen, until the token
expires (api/replay.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_seen_jti",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_auth_seen_jti_expires_at", "auth_seen_jti", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_auth_seen_jti_expires_at", "auth_seen_jti")
    op.drop_table("auth_seen_jti")
