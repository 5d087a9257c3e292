"""Personal reminders (`!remind`).

Revision ID: 0014_reminders
Revises: 0013_search
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_reminders"
down_revision = "0013_search"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reminders",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("target", sa.String(255), nullable=True),
        sa.Column("room_id", sa.String(255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("trigger", sa.String(12), nullable=False),
        sa.Column("due_at", TZ, nullable=True),
        sa.Column("rrule", sa.String(128), nullable=True),
        sa.Column("proposal_id", sa.Integer(), nullable=True),
        sa.Column("dossier_ref", sa.String(16), nullable=True),
        sa.Column("offset_minutes", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("last_fired_at", TZ, nullable=True),
    )
    op.create_index("ix_reminders_dossier_ref", "reminders", ["dossier_ref"])
    op.create_index("ix_reminders_state", "reminders", ["state", "due_at"])
