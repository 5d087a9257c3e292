"""The audience check: an outbox row that carries personal data keeps what it carries and
its brief form, so the sender can check the room again just before sending and fall back.

Revision ID: 0011_audience
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_audience"
down_revision = "0010_room_guard"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("audience", sa.Text(), nullable=True))
