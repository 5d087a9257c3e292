"""Dossiers, subjects, notes, threat assessments, the timeline, and role grants.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dossier_counters",
        sa.Column("year", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("last", sa.Integer(), nullable=False),
    )
    op.create_table(
        "dossiers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("ref", sa.String(16), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("basis", sa.String(8), nullable=True),
        sa.Column("external_ref", sa.String(128), nullable=True),
        sa.Column("lead", sa.String(255), nullable=True),
        sa.Column("starts_at", TZ, nullable=True),
        sa.Column("ends_at", TZ, nullable=True),
        sa.Column("room_id", sa.String(255), nullable=True, unique=True),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("level_at", TZ, nullable=True),
    )
    op.create_index("ix_dossiers_activity", "dossiers", ["status", "updated_at"])
    op.create_index("ix_dossiers_kind", "dossiers", ["kind", "updated_at"])
    op.create_index("ix_dossiers_lead", "dossiers", ["lead"])
    op.create_index("ix_dossiers_level", "dossiers", ["level"])
    op.create_table(
        "dossier_subjects",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("dossier_id", sa.Integer(), sa.ForeignKey("dossiers.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
    )
    op.create_index("ix_dossier_subjects_dossier_id", "dossier_subjects", ["dossier_id"])
    op.create_table(
        "dossier_notes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("dossier_id", sa.Integer(), sa.ForeignKey("dossiers.id"), nullable=False),
        sa.Column("author", sa.String(255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
    )
    op.create_index("ix_dossier_notes_dossier_id", "dossier_notes", ["dossier_id"])
    op.create_table(
        "threat_assessments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("dossier_id", sa.Integer(), sa.ForeignKey("dossiers.id"), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("external_ref", sa.String(128), nullable=True),
        sa.Column("review_at", TZ, nullable=False),
        sa.Column("assessed_by", sa.String(255), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
    )
    op.create_index("ix_assessments_dossier", "threat_assessments", ["dossier_id", "id"])
    op.create_table(
        "dossier_timeline",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("dossier_id", sa.Integer(), sa.ForeignKey("dossiers.id"), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
    )
    op.create_index("ix_timeline_dossier", "dossier_timeline", ["dossier_id", "id"])
    op.create_table(
        "role_grants",
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("role", sa.String(16), primary_key=True),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("changed_by", sa.String(255), nullable=False),
        sa.Column("changed_at", TZ, nullable=False),
    )
