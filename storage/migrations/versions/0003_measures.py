"""Measures, proposals, votes, the scheduler's fired keys, and named outbox messages.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("ref", sa.String(64), nullable=True))
    op.create_index("ix_outbox_ref", "outbox", ["ref"])
    op.create_index("ix_outbox_sent_event", "outbox", ["sent_event_id"])
    op.create_table(
        "measures",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("dossier_id", sa.Integer(), sa.ForeignKey("dossiers.id"), nullable=False),
        sa.Column("type", sa.String(24), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("executor", sa.String(200), nullable=True),
        sa.Column("starts_at", TZ, nullable=True),
        sa.Column("ends_at", TZ, nullable=True),
        sa.Column("review_at", TZ, nullable=True),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("acknowledged_by", sa.String(255), nullable=True),
        sa.Column("acknowledged_at", TZ, nullable=True),
    )
    op.create_index("ix_measures_dossier_id", "measures", ["dossier_id"])
    op.create_index("ix_measures_state", "measures", ["state"])
    op.create_table(
        "proposals",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("measure_id", sa.Integer(), sa.ForeignKey("measures.id"), nullable=False),
        sa.Column("action", sa.String(12), nullable=False),
        sa.Column("changes", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("proposer", sa.String(255), nullable=False),
        sa.Column("origin_room", sa.String(255), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("decided_at", TZ, nullable=True),
        sa.Column("decided_by", sa.Text(), nullable=True),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("rationale_by", sa.String(255), nullable=True),
    )
    op.create_index("ix_proposals_measure_id", "proposals", ["measure_id"])
    op.create_index("ix_proposals_state", "proposals", ["state"])
    op.create_table(
        "votes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("proposal_id", sa.Integer(), sa.ForeignKey("proposals.id"), nullable=False),
        sa.Column("voter", sa.String(255), nullable=False),
        sa.Column("choice", sa.String(8), nullable=False),
        sa.Column("reaction_event_id", sa.String(255), nullable=False, unique=True),
        sa.Column("cast_at", TZ, nullable=False),
        sa.Column("withdrawn_at", TZ, nullable=True),
    )
    op.create_index("ix_votes_proposal_id", "votes", ["proposal_id"])
    op.create_table(
        "fired",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("fired_at", TZ, nullable=False),
    )
