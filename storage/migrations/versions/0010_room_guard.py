"""Dossier rooms: the request is recorded on the dossier when it is made.

A second `!dossier room` sent before the homeserver created the first one's room used to be
answered "Creating the room" again and recorded twice on the timeline; with the request on
the dossier, the rules refuse it at once.

Revision ID: 0010_room_guard
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_room_guard"
down_revision = "0009_vote_feedback"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "dossiers", sa.Column("room_requested_at", sa.DateTime(timezone=True), nullable=True)
    )
