"""How personal reminders read: when each falls due in words and local time, and the post
that mentions whoever it is for.

A reminder's text is the sender's own words, said in the room it is posted in; one about a
dossier or a proposal also names what became of them, so it carries dossier data and falls
back to its reference where not everyone in the room may read that."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from commands.formatting import when
from commands.recurrence import describe
from commands.replies import DETAILS_WITHHELD, Announcement, Reply, Severity
from workflow.access import Data
from workflow.reminder_model import PersonalReminder, ReminderFired, Scheduled, Trigger


def carries(reminder: PersonalReminder) -> Data | None:
    return None if reminder.trigger is Trigger.AT else Data.DOSSIER


def due_words(scheduled: Scheduled, tz: ZoneInfo) -> str:
    """When it falls due, as the sender asked and as it stands now."""
    r = scheduled.reminder
    if r.trigger is Trigger.DECIDED:
        return f"when P-{r.proposal_id} is decided"
    if r.trigger is Trigger.START:
        assert r.offset is not None
        before = f"{_duration(r.offset)} before {r.dossier_ref} starts"
        if scheduled.at is None:
            return f"{before} (no start date yet)"
        return f"{before}: {when(scheduled.at, tz)}"
    if r.rrule is not None:
        return f"{describe(r.rrule)}, next {when(scheduled.at, tz)}"
    return when(scheduled.at, tz)


def _duration(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    for unit, size in (("week", 7 * 24 * 60), ("day", 24 * 60), ("hour", 60)):
        if minutes and minutes % size == 0:
            count = minutes // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def who(reminder: PersonalReminder, actor: str) -> str:
    if reminder.target is None:
        return "this room"
    return "you" if reminder.target == actor else reminder.target


def set_reply(scheduled: Scheduled, actor: str, tz: ZoneInfo) -> Reply:
    r = scheduled.reminder
    return Reply(
        f"Reminder {r.ref} set for {who(r, actor)}",
        Severity.SUCCESS,
        fields=(("When", due_words(scheduled, tz)), ("Text", r.text or "—")),
        lines=(f"Cancel with !remind cancel {r.ref}.",),
        carries=carries(r),
    )


def list_reply(found: list[Scheduled], actor: str, tz: ZoneInfo) -> Reply:
    if not found:
        return Reply("You have no pending reminders in this room")
    lines = tuple(
        f"{s.reminder.ref} · {due_words(s, tz)} · for {who(s.reminder, actor)} · "
        f"{s.reminder.text or '—'}"
        for s in found
    )
    count = len(found)
    kinds = {carries(s.reminder) for s in found} - {None}
    return Reply(
        f"{count} pending reminder{'s' if count != 1 else ''} in this room",
        lines=lines,
        carries=Data.DOSSIER if kinds else None,
    )


def reminder_announcements(fired: ReminderFired, tz: ZoneInfo) -> tuple[Announcement, ...]:
    """The post, in the room where the reminder was set, mentioning whoever it is for."""
    r = fired.reminder
    title = "Reminder: " + (r.text or _about(fired))
    if fired.late:
        title = "LATE — " + title
    fields: list[tuple[str, str]] = []
    if r.text and r.trigger is not Trigger.AT:
        fields.append(("About", _about(fired)))
    if fired.proposal is not None:
        fields.append(("Decision", f"{fired.proposal.ref} {fired.proposal.state}"))
    if r.trigger is Trigger.START:
        fields.append(("Dossier", f"{r.dossier_ref} starts {when(fired.starts_at, tz)}"))
    if r.target is not None and r.target != r.created_by:
        fields.append(("Set by", r.created_by))
    if fired.next_at is not None and r.rrule is not None:
        fields.append(("Next", f"{when(fired.next_at, tz)} ({describe(r.rrule)})"))
    fields.append(("Reminder", r.ref))
    severity = Severity.WARNING if fired.late else Severity.INFO
    lines = (f"Was due {when(fired.due_at, tz)}, posted late.",) if fired.late else ()
    reply = Reply(title, severity, lines=lines, fields=tuple(fields), carries=carries(r))
    brief = None
    if reply.carries is not None:
        heading = f"{'LATE — ' if fired.late else ''}Reminder {r.ref}"
        brief = Reply(heading, severity, lines=(*lines, DETAILS_WITHHELD))
    mentions = (r.target,) if r.target else ()
    return (Announcement(r.room_id, reply, mentions=mentions, brief=brief),)


def _about(fired: ReminderFired) -> str:
    r = fired.reminder
    if r.trigger is Trigger.DECIDED:
        return f"P-{r.proposal_id} is decided"
    if r.trigger is Trigger.START:
        assert r.offset is not None
        return f"{r.dossier_ref} starts in {_duration(r.offset)}"
    return r.ref
