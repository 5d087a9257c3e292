"""Search index: each dossier's folded words, so `!dossier find` ignores case and accents and
uses an index (a btree range scan per query word) on both backends.

Revision ID: 0013_search
Revises: 0012_persons
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_search"
down_revision = "0012_persons"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from storage.search import fill_all  # the same terms as every later write makes

    op.create_table(
        "dossier_terms",
        sa.Column("dossier_id", sa.Integer(), sa.ForeignKey("dossiers.id"), primary_key=True),
        sa.Column("field", sa.String(16), primary_key=True),
        sa.Column(
            "term",
            sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql"),
            primary_key=True,
        ),
    )
    op.create_index("ix_dossier_terms_term", "dossier_terms", ["term", "dossier_id"])
    fill_all(op.get_bind())
