"""Erasure: which dossiers each outbox message names.

A purge must find the bot's messages that carried a dossier's personal data long after
their content was dropped from the outbox (a grace window after sending): to redact them on
the homeserver, and to withdraw those not yet sent. `outbox_dossiers` files each message
under the dossiers it names, written with the message; IDs only, so it outlives the content.

Revision ID: 0016_erase
Revises: 0015_edits
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_erase"
down_revision = "0015_edits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_dossiers",
        sa.Column(
            "message_id",
            sa.Integer(),
            sa.ForeignKey("outbox.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("dossier_ref", sa.String(16), primary_key=True),
    )
    op.create_index("ix_outbox_dossiers_dossier", "outbox_dossiers", ["dossier_ref", "message_id"])
