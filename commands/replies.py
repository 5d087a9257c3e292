"""Reply models: what a command says, independent of how bot/ renders it (HTML + plain text).

Commands never format HTML; a later translation touches only these models and the renderer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from config import Occasion
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
class Link:
    """Wherever `text` (an ID such as P-3 or M-7) stands as a word in a reply's title, fields
    or lines, it links to the message posted under `ref` (its prompt, its order), once that
    message is out; before that, or if it never went out, it stays plain text."""

    text: str
    ref: str


@dataclass(frozen=True)
class Group:
    """A list under a heading of its own, after the reply's lines: what applies to each
    person of a dossier, say."""

    heading: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Reply:
    """`carries` says what personal data the reply (with its attachments) shows, so the
    runtime posts it only where every member may read that (workflow/access.py); None for
    a reply of IDs and counts at most: help, ping, usage errors, refusals."""

    title: str
    severity: Severity = Severity.INFO
    lines: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()
    groups: tuple[Group, ...] = ()
    code: str | None = None
    sections: tuple[Section, ...] = ()
    """Headed parts after the lines and the code, each a list that may nest one level."""
    also: tuple[Announcement, ...] = field(default=())
    attachments: tuple[Attachment, ...] = ()
    room: RoomRequest | None = None
    carries: Data | None = None
    links: tuple[Link, ...] = ()


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
class Notify:
    """Mention those who must act on a post: the holders of the roles the config names for
    `occasion` who are in the room, never the users `besides` (who caused the post)."""

    occasion: Occasion
    besides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Announcement:
    """A message to another room, committed in the same transaction as its cause.

    `ref` names the message so later events can find it (reactions on a prompt, an order to
    acknowledge); `replaces` edits the message named so instead of posting a new one;
    `reactions` are the bot's own, set on it at once (so an approver only taps); `thread`
    posts it in the thread under the message named so (a notice about a vote on a prompt).
    `mentions` names users to notify, `notify` asks for those who must act (both only where
    they are members of the room).

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
    notify: Notify | None = None
    thread: str | None = None
    brief: Reply | None = None

    def __post_init__(self) -> None:
        if self.brief is not None and (
            self.brief.carries is not None or self.brief.attachments or self.brief.also
        ):
            raise ValueError("a brief carries IDs and counts only, no files, no more posts")
