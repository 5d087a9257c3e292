"""Persons in a dossier: each an entry of its own, with a number inside the dossier.

Until now a dossier's subjects were a list of names. A dossier can protect a whole family,
with close protection for one parent and patrols at the home for all, and a threat level can
apply to one person; so persons get their own rows (`dossier_persons`), numbered per dossier
(`D-2026-0007/2`), and assessments and measures may name one (`person_id`; none: the whole
dossier, as before). Every existing subject becomes a person, numbered in the order the
subjects were stored, and `dossier_subjects` goes.

Revision ID: 0012_persons
Revises: 0011_audience
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_persons"
down_revision = "0011_audience"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dossier_persons",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("dossier_id", sa.Integer(), sa.ForeignKey("dossiers.id"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("added_at", TZ, nullable=False),
        sa.Column("removed_at", TZ, nullable=True),
    )
    op.create_index(
        "ix_dossier_persons_number", "dossier_persons", ["dossier_id", "number"], unique=True
    )
    # Each subject, numbered 1, 2, ... within its dossier in the order it was stored, added
    # when its dossier was opened.
    op.execute(
        """
        INSERT INTO dossier_persons (dossier_id, number, name, added_at)
        SELECT s.dossier_id,
               (SELECT count(*) FROM dossier_subjects e
                 WHERE e.dossier_id = s.dossier_id AND e.id <= s.id),
               s.name,
               d.created_at
          FROM dossier_subjects s JOIN dossiers d ON d.id = s.dossier_id
         ORDER BY s.id
        """
    )
    op.drop_index("ix_dossier_subjects_dossier_id", "dossier_subjects")
    op.drop_table("dossier_subjects")
    with op.batch_alter_table("threat_assessments") as batch:
        batch.add_column(sa.Column("person_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_threat_assessments_person_id", "dossier_persons", ["person_id"], ["id"]
        )
    with op.batch_alter_table("measures") as batch:
        batch.add_column(sa.Column("person_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_measures_person_id", "dossier_persons", ["person_id"], ["id"])
        batch.create_index("ix_measures_person_id", ["person_id"])
