"""Vote feedback: who has been told, once, that a vote of theirs on a prompt does not count.

A ✅ or ❌ that does not count (the proposer's own, a user without the role, a late vote)
gets one short notice in the prompt's thread; the key (prompt, user) keeps it to one notice
per user and prompt, across restarts and whatever the number of such votes.

Revision ID: 0009_vote_feedback
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_vote_feedback"
down_revision = "0008_role_requests"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vote_feedback",
        sa.Column("ref", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("told_at", sa.DateTime(timezone=True), nullable=False),
    )
