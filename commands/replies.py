"""Reply models: what a command says, independent of how bot/ renders it (HTML + plain text).

Commands never format HTML; a later translation touches only these models and the renderer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from workflow.access import Data


class Severity(enum.StrEnum):
    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    ERROR = "error"


# The line a brief form ends with: the post exists, its details are not for this room.
DETAILS_WITHHELD = "Details withheld: not everyone in this room may read them."


class RoomKey(enum.StrEnum):
    """The configured rooms an announcement can go to (keys of `rooms.*`)."""

    COORDINATION = "coordination"
    APPROVALS = "approvals"
    OPERATIONS = "operations"
    EARLY_WARNING = "early_warning"


@dataclass(frozen=True)
class Reply:
    """`carries` says what personal data the reply (with its attachments) shows, so the
    runtime posts it only where every member may read that (workflow/access.py); None for
    a reply of IDs and counts at most: help, ping, usage errors, refusals."""

    title: str
    severity: Severity = Severity.INFO
    lines: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()
    code: str | None = None
    sections: tuple[Section, ...] = ()
    """Headed parts after the lines and the code, each a list that may nest one level."""
    also: tuple[Announcement, ...] = field(default=())
    attachments: tuple[Attachment, ...] = ()
    room: RoomRequest | None = None
    carries: Data | None = None


@dataclass(frozen=True)
class Item:
    """One entry of a section's list: text, optionally after a piece of code (a usage line),
    and the entries nested under it."""

    text: str = ""
    code: str | None = None
    sub: tuple[str, ...] = ()


@dataclass(frozen=True)
class Section:
    heading: str
    items: tuple[Item, ...] = ()


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
    posts it in the thread under the message named so (a notice about a vote on a prompt).

    `brief` is what is posted instead when the room may not read what `reply` carries (an
    uncleared member, no encryption): IDs and counts only, under the same `ref`, so a prompt
    cut down still collects votes. A part with no brief (the second page of an agenda, a
    file) is then left out altogether."""

    room: RoomKey | str
    reply: Reply
    ref: str | None = None
    replaces: str | None = None
    reactions: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    thread: str | None = None
    brief: Reply | None = None

    def __post_init__(self) -> None:
        if self.brief is not None and (
            self.brief.carries is not None or self.brief.attachments or self.brief.also
        ):
            raise ValueError("a brief carries IDs and counts only, no files, no more posts")
