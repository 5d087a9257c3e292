"""Edited commands: what became of each command, so an edit of it is run at most once.

Element fixes a typo by editing the message. An edit of a command that failed to parse is
run (once it parses, the command is closed); an edit of a command that took effect is
answered "already done". The row is written in the transaction of the command's effects,
so a replayed or second edit finds it closed.

Revision ID: 0015_edits
Revises: 0014_reminders
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_edits"
down_revision = "0014_reminders"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "command_events",
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("room_id", sa.String(255), nullable=False),
        sa.Column("sender", sa.String(255), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("thread_root", sa.String(255), nullable=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_command_events_handled_at", "command_events", ["handled_at"])
