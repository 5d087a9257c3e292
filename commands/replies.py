"""Reply models: what a command says, independent of how bot/ renders it (HTML + plain text).

Commands never format HTML; a later translation touches only these models and the renderer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Severity(enum.StrEnum):
    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    ERROR = "error"


class RoomKey(enum.StrEnum):
    """The configured rooms an announcement can go to (keys of `rooms.*`)."""

    COORDINATION = "coordination"
    APPROVALS = "approvals"
    OPERATIONS = "operations"
    EARLY_WARNING = "early_warning"


@dataclass(frozen=True)
class Reply:
    title: str
    severity: Severity = Severity.INFO
    lines: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()
    code: str | None = None
    also: tuple[Announcement, ...] = field(default=())
    attachments: tuple[Attachment, ...] = ()
    room: RoomRequest | None = None


@dataclass(frozen=True)
class Attachment:
    """A file uploaded to the room after the reply (an export, a full agenda)."""

    filename: str
    mimetype: str
    data: bytes


@dataclass(frozen=True)
class RoomRequest:
    """Ask the runtime for a dedicated encrypted room, linked to a dossier once created."""

    dossier_ref: str
    name: str
    topic: str
    invite: tuple[str, ...]
    welcome: Reply


@dataclass(frozen=True)
class Announcement:
    """A message to another room, committed in the same transaction as its cause.

    `ref` names the message so later events can find it (reactions on a prompt, an order to
    acknowledge); `replaces` edits the message named so instead of posting a new one;
    `reactions` are the bot's own, set on it at once (so an approver only taps); `thread`
    posts it in the thread under the message named so (a notice about a vote on a prompt)."""

    room: RoomKey | str
    reply: Reply
    ref: str | None = None
    replaces: str | None = None
    reactions: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    thread: str | None = None
