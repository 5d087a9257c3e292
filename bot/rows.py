"""Outbox rows as the pipeline builds them, and when a reply and an announcement for the
same room are safe to send as one message."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.render import MESSAGE, merged
from commands.replies import Announcement

# A merged message stays well under the homeserver's event size limit: an answer split into
# parts because it is long (an agenda) keeps its parts apart.
MERGED_BYTES = 16_000


@dataclass(frozen=True)
class Row:
    room_id: str
    kind: str
    content: dict[str, Any]
    ref: str | None = None
    audience: dict[str, Any] | None = None


def merged_row(first: Row, announcement: Announcement, posted: list[Row]) -> Row | None:
    """The reply with an announcement for the same room, as one message; None where that
    is not safe. An announcement with a `ref` keeps its own event: later events find it by
    that name (reactions counted on a prompt, an acknowledgement, an edit on decision), and
    a reaction on a merged message would land on the reply. Edits and thread posts are no
    new message, and an announcement with files keeps them after its own text.

    The merged row is checked again by the sender like the reply (`keep` is what of the
    announcement still goes out if the reply is withheld: itself if it carries nothing,
    else its brief), or, for a reply that carries nothing, like the announcement (its
    brief then includes the reply). Parts that carry different data stay apart, and so do
    parts that together would be long (MERGED_BYTES)."""
    if announcement.ref or announcement.replaces or announcement.thread or len(posted) != 1:
        return None
    row, mine = posted[0], first.audience
    if row.room_id != first.room_id or row.kind != MESSAGE or row.ref is not None:
        return None
    theirs = row.audience
    audience: dict[str, Any] | None
    if theirs is None:
        audience = None if mine is None else keeping(mine, row.content)
    elif mine is None:
        brief = theirs["brief"]
        whole = first.content if brief is None else merged(first.content, brief)
        audience = {"carries": theirs["carries"], "brief": whole}
    elif "reply_to" in mine and mine["carries"] == theirs["carries"]:
        audience = keeping(mine, theirs["brief"])
    else:
        return None
    content = merged(first.content, row.content)
    if len(json.dumps(content, ensure_ascii=False).encode()) > MERGED_BYTES:
        return None
    return Row(first.room_id, MESSAGE, content, audience=audience)


def keeping(check: dict[str, Any], part: dict[str, Any] | None) -> dict[str, Any]:
    """The reply's check, also keeping `part` for the sender to post if it withholds."""
    if part is None:
        return check
    kept = check.get("keep")
    return {**check, "keep": part if kept is None else merged(kept, part)}
