"""Skipped and moved meeting occurrences.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "meeting_changes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("meeting", sa.String(32), nullable=False),
        sa.Column("occurrence", TZ, nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("moved_to", TZ, nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.String(255), nullable=False),
        sa.Column("changed_at", TZ, nullable=False),
    )
    op.create_index(
        "ix_meeting_changes_occurrence", "meeting_changes", ["meeting", "occurrence"], unique=True
    )
