"""Personal reminders' vocabulary: what `!remind` asks for, what is stored, and what the
scheduler hands over to be posted. Pure data, shared by storage, rules and views."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from workflow.model import Proposal

FIRED_KIND = "remind"
REF_PREFIX = "RM-"


class Trigger(enum.StrEnum):
    AT = "at"  # a time, once or recurring
    DECIDED = "decided"  # when a proposal is decided (or withdrawn, or expires)
    START = "start"  # some time before a dossier's start, following it when it moves


class ReminderState(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    CANCELLED = "cancelled"


def reminder_ref(reminder_id: int) -> str:
    return f"{REF_PREFIX}{reminder_id}"


@dataclass(frozen=True)
class ReminderRequest:
    """What the sender asked for, read from the command: exactly one trigger's fields set."""

    target: str | None
    """The user to mention: the sender for `me`, another user, or None for `room`."""
    room_id: str
    text: str
    trigger: Trigger
    at: datetime | None = None
    rrule: str | None = None
    proposal_id: int | None = None
    dossier_ref: str | None = None
    offset: timedelta | None = None


@dataclass(frozen=True)
class PersonalReminder:
    id: int
    created_by: str
    target: str | None
    room_id: str
    text: str
    trigger: Trigger
    due_at: datetime | None
    """The next time of a timed reminder; None for the other triggers (computed instead)."""
    rrule: str | None
    proposal_id: int | None
    dossier_ref: str | None
    offset: timedelta | None
    state: ReminderState
    created_at: datetime
    last_fired_at: datetime | None

    @property
    def ref(self) -> str:
        return reminder_ref(self.id)


@dataclass(frozen=True)
class Scheduled:
    """A pending reminder with the time it falls due, as of now; None while it cannot be
    known (a proposal still pending, a dossier without a start)."""

    reminder: PersonalReminder
    at: datetime | None


@dataclass(frozen=True)
class ReminderDue:
    reminder: PersonalReminder
    at: datetime

    @property
    def key(self) -> str:
        """One per reminder and due time: a recurring one fires once per occurrence, one
        before a dossier's start once for the start it was due for."""
        return f"{self.reminder.ref}/{self.at.astimezone(UTC).isoformat()}"

    @property
    def name(self) -> str:
        return self.key


@dataclass(frozen=True)
class ReminderFired:
    """A reminder to post now; `late` when it is posted well after it was due."""

    reminder: PersonalReminder
    due_at: datetime
    late: bool
    next_at: datetime | None = None
    """A recurring reminder's next time."""
    proposal: Proposal | None = None
    starts_at: datetime | None = None
