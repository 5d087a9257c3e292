"""What a purge asks of the homeserver, as outbox rows: `aegis purge` runs out of process,
so it cannot redact anything itself. It commits the rows with the purge; the bot's sender
performs them in order, each exactly once (bot/effects.py `redact`, `redact_room`).

- The bot's own messages that named the dossier (filed under it at enqueue, by ID or by one
  of its measures or proposals) are redacted wherever they were posted.
- In the dossier's own room every event is redacted, the members' commands and talk
  included: the bot created the room and holds the power to. Then a notice says why, and
  the bot leaves.
- What the members typed in the configured rooms stays: the bot may not redact other
  people's messages there (docs/operations.md).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.render import (
    LEAVE,
    MESSAGE,
    REACTION,
    REDACT,
    REDACT_ROOM,
    UPLOAD,
    membership_request,
    notice,
)
from bot.rows import Row
from commands.replies import Reply
from storage import dossiers, outbox

REASON = "personal data removed under the retention policy"
# Rows that became one event of the bot's (an upload posts its `m.file`).
POSTED = (MESSAGE, REACTION, UPLOAD)


def txn_id(cause: str, index: int) -> str:
    return hashlib.sha256(f"{cause}/{index}".encode()).hexdigest()[:40]


def event_txn_id(row_txn_id: str, event_id: str) -> str:
    """One redaction of a room walk: stable, so a walk repeated after a crash or a lost
    answer is de-duplicated by the homeserver."""
    return hashlib.sha256(f"{row_txn_id}/{event_id}".encode()).hexdigest()[:40]


def tombstone(ref: str) -> Reply:
    return Reply(
        f"{ref} was purged",
        lines=(
            "Its personal data was removed under the retention policy, and this room's "
            "messages were redacted.",
            "Aegis has left this room.",
        ),
    )


async def erase(session: AsyncSession, ref: str, own_user_id: str, now: datetime) -> int:
    """Queues the homeserver's part of the purge of `ref`, in the purge's transaction; the
    dossier's unsent rows are withdrawn first, so nothing about it is posted afterwards.
    Returns how many rows were queued."""
    sent = await outbox.about_dossier(session, ref, now)
    dossier = await dossiers.get(session, ref)
    room_id = dossier.room_id if dossier is not None else None
    rows = [
        Row(m.room_id, REDACT, {"event_id": m.event_id, "reason": REASON})
        for m in sent
        if m.room_id != room_id and m.event_type in POSTED
    ]
    if room_id:
        rows += [
            Row(room_id, REDACT_ROOM, {"reason": REASON}),
            Row(room_id, MESSAGE, notice(tombstone(ref))),
            Row(room_id, LEAVE, membership_request(own_user_id)),
        ]
    for index, row in enumerate(rows):
        await outbox.enqueue(
            session,
            txn_id=txn_id(f"purge:{ref}", index),
            room_id=row.room_id,
            event_type=row.kind,
            content=row.content,
            now=now,
        )
    return len(rows)
