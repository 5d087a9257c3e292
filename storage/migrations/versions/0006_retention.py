"""Retention: the audit hash covers a digest of each detail, and dossiers can be purged.

Until now each audit row's hash covered its raw detail, so removing personal data from a
detail would break the chain. This adds `audit_log.detail_digest` and re-chains the existing
rows so each hash covers the digest instead. Only an intact chain is re-chained: the rows are
checked with the old formula first, and from the first broken row on they are left exactly as
they were, so `aegis audit verify` still names that row afterwards.

Also adds `dossiers.purged_at`, the tombstone marker set by `aegis purge`.

Revision ID: 0006
Revises: 0005
"""

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
GENESIS = "0" * 64

# Frozen here: the formulas as of this revision, whatever storage/audit.py becomes later.
_audit = sa.table(
    "audit_log",
    sa.column("seq", sa.Integer()),
    sa.column("at", TZ),
    sa.column("actor", sa.String()),
    sa.column("role", sa.String()),
    sa.column("action", sa.String()),
    sa.column("target", sa.String()),
    sa.column("event_id", sa.String()),
    sa.column("detail", sa.Text()),
    sa.column("detail_digest", sa.String()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)


def _hash(seq: int, at: datetime, fields: dict[str, str], prev_hash: str) -> str:
    payload = json.dumps(
        {"seq": seq, "at": at.isoformat(), "prev": prev_hash, **fields},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _fields(row: Any, **detail: str) -> dict[str, str]:
    return {
        "actor": row.actor,
        "role": row.role,
        "action": row.action,
        "target": row.target,
        "event_id": row.event_id,
        **detail,
    }


def _rechain(conn: sa.Connection) -> None:
    rows = conn.execute(sa.select(_audit).order_by(_audit.c.seq)).all()
    old_prev, new_prev, expected, intact = GENESIS, GENESIS, 1, True
    for row in rows:
        at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
        digest = hashlib.sha256(row.detail.encode()).hexdigest()
        intact = (
            intact
            and row.seq == expected
            and row.prev_hash == old_prev
            and _hash(row.seq, at, _fields(row, detail=row.detail), old_prev) == row.hash
        )
        values: dict[str, str] = {"detail_digest": digest}
        if intact:
            new_hash = _hash(row.seq, at, _fields(row, detail_sha256=digest), new_prev)
            values.update(prev_hash=new_prev, hash=new_hash)
            new_prev = new_hash
        conn.execute(sa.update(_audit).where(_audit.c.seq == row.seq).values(**values))
        old_prev, expected = row.hash, row.seq + 1


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("detail_digest", sa.String(64), nullable=True))
    _rechain(op.get_bind())
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("detail_digest", existing_type=sa.String(64), nullable=False)
    op.add_column("dossiers", sa.Column("purged_at", TZ, nullable=True))
