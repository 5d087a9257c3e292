"""Dossiers by activity, whatever their status: `!dossier find` walks this index newest
first and stops at its page, instead of sorting every match.

Revision ID: 0020_recent_first
Revises: 0019_ew_retention
"""

from alembic import op

revision = "0020_recent_first"
down_revision = "0019_ew_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_dossiers_recent", "dossiers", ["updated_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_dossiers_recent", table_name="dossiers")
