"""A keyed audit chain: per-entry salts for detail digests, and the checkpoints queued for
anchoring the chain's head in Matrix.

The key that signs the chain is never in the database, so this migration cannot sign
anything: the existing (unkeyed) chain is carried over at the bot's next start, whose first
keyed entry is an `audit.rekey` checkpoint naming the old head's seq and hash (storage/audit.py).

Revision ID: 0017_keyed_audit
Revises: 0016_erase
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_keyed_audit"
down_revision = "0016_erase"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_salts",
        sa.Column(
            "seq",
            sa.Integer(),
            sa.ForeignKey("audit_log.seq"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("salt", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
