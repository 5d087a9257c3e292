"""Reads are audited per command: `audit_reads` says which dossiers each `dossier.read` entry
displayed.

A listing (`!dossier list`, `!dossier find`, `!approvals`) is one audit entry naming every
dossier it showed; this table holds one row per (dossier, entry), so "who read D-x" is an
indexed lookup rather than a scan of JSON details, and `aegis audit verify` checks each
entry's rows (keyed by seq) against its detail. Reads recorded before this revision each
named their one dossier as the entry's target; they are indexed from it.

Revision ID: 0007_reads
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_reads"
down_revision = "0006"
branch_labels = None
depends_on = None

_audit = sa.table(
    "audit_log",
    sa.column("seq", sa.Integer()),
    sa.column("action", sa.String()),
    sa.column("target", sa.String()),
)


def upgrade() -> None:
    reads = op.create_table(
        "audit_reads",
        sa.Column(
            "seq",
            sa.Integer(),
            sa.ForeignKey("audit_log.seq"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("dossier_ref", sa.String(16), primary_key=True),
    )
    op.create_index("ix_audit_reads_dossier", "audit_reads", ["dossier_ref", "seq"])
    op.execute(
        reads.insert().from_select(
            ["dossier_ref", "seq"],
            sa.select(_audit.c.target, _audit.c.seq).where(_audit.c.action == "dossier.read"),
        )
    )
