"""Early warning: partners, their reports, sector warnings, votes, webhooks, deliveries.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ew_partners",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("sector", sa.String(16), nullable=False),
        sa.Column("webhook_url", sa.String(500), nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("webhook_secret", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
    )
    op.create_index("ix_ew_partners_sector", "ew_partners", ["sector"])
    op.create_table(
        "ew_reports",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("partner_id", sa.Integer(), sa.ForeignKey("ew_partners.id"), nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("observed_at", TZ, nullable=False),
        sa.Column("location", sa.String(300), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("category", sa.String(12), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("vehicle_plate", sa.String(32), nullable=True),
        sa.Column("plate_key", sa.String(32), nullable=False),
        sa.Column("site_key", sa.String(300), nullable=False),
        sa.Column("contact", sa.String(300), nullable=True),
        sa.Column("attachments", sa.Text(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("assessed_by", sa.String(255), nullable=True),
        sa.Column("closed_reason", sa.Text(), nullable=True),
        sa.Column("dossier_ref", sa.String(32), nullable=True),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("idempotency_key", sa.String(100), nullable=True),
        sa.Column("announced", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_ew_reports_observed_at", "ew_reports", ["observed_at"])
    op.create_index("ix_ew_reports_plate_key", "ew_reports", ["plate_key"])
    op.create_index("ix_ew_reports_site_key", "ew_reports", ["site_key"])
    op.create_index("ix_ew_reports_status", "ew_reports", ["status"])
    op.create_index("ix_ew_reports_announced", "ew_reports", ["announced"])
    op.create_index(
        "ix_ew_reports_partner_key", "ew_reports", ["partner_id", "idempotency_key"], unique=True
    )
    op.create_index("ix_ew_reports_partner_received", "ew_reports", ["partner_id", "received_at"])
    op.create_table(
        "ew_warnings",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("sector", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("from_report", sa.Integer(), sa.ForeignKey("ew_reports.id"), nullable=True),
        sa.Column("drafted_by", sa.String(255), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("decided_at", TZ, nullable=True),
        sa.Column("decided_by", sa.Text(), nullable=True),
    )
    op.create_index("ix_ew_warnings_state", "ew_warnings", ["state"])
    op.create_table(
        "ew_warning_votes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("warning_id", sa.Integer(), sa.ForeignKey("ew_warnings.id"), nullable=False),
        sa.Column("voter", sa.String(255), nullable=False),
        sa.Column("choice", sa.String(8), nullable=False),
        sa.Column("reaction_event_id", sa.String(255), nullable=False, unique=True),
        sa.Column("cast_at", TZ, nullable=False),
        sa.Column("withdrawn_at", TZ, nullable=True),
    )
    op.create_index("ix_ew_warning_votes_warning_id", "ew_warning_votes", ["warning_id"])
    op.create_table(
        "ew_webhooks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("partner_id", sa.Integer(), sa.ForeignKey("ew_partners.id"), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("subject", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=True),
        sa.Column("delivered_at", TZ, nullable=True),
        sa.Column("failed_at", TZ, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    op.create_index("ix_ew_webhooks_next_attempt_at", "ew_webhooks", ["next_attempt_at"])
    op.create_table(
        "ew_deliveries",
        sa.Column("warning_id", sa.Integer(), sa.ForeignKey("ew_warnings.id"), primary_key=True),
        sa.Column("partner_id", sa.Integer(), sa.ForeignKey("ew_partners.id"), primary_key=True),
        sa.Column("webhook_id", sa.Integer(), sa.ForeignKey("ew_webhooks.id"), nullable=True),
        sa.Column("fetched_at", TZ, nullable=True),
    )
