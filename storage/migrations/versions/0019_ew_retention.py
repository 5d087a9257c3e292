"""Early-warning retention: when a report's, a sector warning's or a webhook's personal data
was purged (`retention.early_warning_days`, `aegis purge`). The rows stay as tombstones, so
the IDs that others name (warnings name their report, deliveries their webhook) still resolve.

Revision ID: 0019_ew_retention
Revises: 0018_audit_guard
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_ew_retention"
down_revision = "0018_audit_guard"
branch_labels = None
depends_on = None

TABLES = ("ew_reports", "ew_warnings", "ew_webhooks")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("purged_at")
