"""How agendas, reminders and the meeting schedule read: sections of short lines, split into
messages that stay under the homeserver's event size limit, the whole agenda as a Markdown
file, and the schedule's lines. Shared by the commands and the scheduler."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

from commands.formatting import age, count, when
from commands.measure_views import state_word, what
from commands.replies import (
    DETAILS_WITHHELD,
    Announcement,
    Attachment,
    Link,
    Reply,
    RoomKey,
    Severity,
)
from workflow.access import Data
from workflow.agenda import (
    Agenda,
    DailyAgenda,
    MeasureLine,
    MonthlyAgenda,
    Protected,
    Review,
    WeeklyAgenda,
)
from workflow.approvals import order_ref, prompt_ref
from workflow.measures import Proposed
from workflow.meetings import Occurrence, Reminder, Starting, agenda_ref, offset_label
from workflow.model import Dossier, DossierKind, Measure, ThreatLevel

# Matrix caps an event at 65,536 bytes, and an encrypted one grows by a third (base64) plus
# its envelope; 40,000 bytes of JSON-encoded text per message leaves room for both.
PART_BYTES = 40_000
# What a link to a message adds to the HTML: the anchor with a matrix.to URL of two IDs.
LINK_BYTES = 240
# A measure's or proposal's ID as a word of a line (not part of a dossier's D-2026-0001).
ID_WORD = re.compile(r"(?<![\w-])[A-Z]-\d+(?![\w-])")
GROUP_NAMES = {
    DossierKind.PERSON: "Persons",
    DossierKind.INSTITUTION: "Institutions",
    DossierKind.EVENT: "Events",
}


@dataclass(frozen=True)
class Section:
    heading: str
    items: tuple[str, ...]
    empty: str = "nothing"


@dataclass(frozen=True)
class Document:
    title: str
    intro: tuple[str, ...]
    sections: tuple[Section, ...]
    details: dict[str, tuple[str, ...]]
    """Extra lines per item for the Markdown file only (the decision commands)."""
    links: tuple[Link, ...] = ()
    """Each measure to its execution order, each proposal to its prompt, in the messages."""

    def slug(self) -> str:
        return self.title.split(" — ")[0].lower().replace(" ", "-")


def _level(level: ThreatLevel | int | None) -> str:
    return "no assessment" if level is None else ThreatLevel(level).label


def _dossier(d: Dossier, now: datetime) -> str:
    assessed = f", assessed {age(d.level_at, now)} ago" if d.level_at else ""
    return f"{d.ref} {d.title} ({d.kind}/{d.category}) | level {_level(d.level)}{assessed}"


def _measure(m: Measure, tz: ZoneInfo, at: datetime) -> str:
    return (
        f"{m.ref} {m.type} [{state_word(m, at, tz)}] "
        f"{when(m.starts_at, tz)} → {when(m.ends_at, tz)}"
    )


def _proposal(p: Proposed, tz: ZoneInfo) -> str:
    return (
        f"{p.proposal.ref}: {what(p, tz)} for {p.dossier.ref} {p.dossier.title}, "
        f"proposed by {p.proposal.proposer} {when(p.proposal.created_at, tz)}"
    )


def _review(review: Review, tz: ZoneInfo, now: datetime) -> str:
    line, m = review.line, review.line.measure
    flags = f" | ⚑ {'; '.join(review.flags)}" if review.flags else ""
    person = line.dossier.person(m.person_id)
    protects = f" | for {person.ref} {person.name}" if person else ""
    return (
        f"{m.ref} {m.type} [{state_word(m, now, tz)}]{protects} | {_dossier(line.dossier, now)} | "
        f"start {when(m.starts_at, tz)}, end {when(m.ends_at, tz)}, "
        f"review {when(m.review_at or line.review_at, tz)}{flags}"
    )


def _protected(protected: Protected, tz: ZoneInfo) -> str:
    """`D-2026-0007/2 Anna Z (Family Z): M-3 close-protection, to …; M-1 patrol (whole dossier)`."""
    measures = "; ".join(
        f"{m.ref} {m.type}, to {when(m.ends_at, tz)}"
        + ("" if m.person_id is not None else " (whole dossier)")
        for m in protected.measures
    )
    return f"{protected.person.ref} {protected.person.name} ({protected.dossier.title}): {measures}"


def _proposals(pending: tuple[Proposed, ...], tz: ZoneInfo) -> tuple[str, ...]:
    return tuple(_proposal(p, tz) for p in pending)


def _to_orders(measures: Iterable[Measure]) -> tuple[Link, ...]:
    return tuple(Link(m.ref, order_ref(m.id)) for m in measures)


def _to_prompts(pending: Iterable[Proposed]) -> tuple[Link, ...]:
    return tuple(Link(p.proposal.ref, prompt_ref(p.proposal)) for p in pending)


def decision_commands(measure: Measure) -> tuple[str, ...]:
    ref = measure.ref
    return (
        f'!measure extend {ref} end="<when>" <reason>',
        f'!measure limit {ref} "<change>" <reason>',
        f'!measure maintain {ref} review="<when>" <reason>',
        f"!measure end {ref} <reason>",
    )


def weekly_document(agenda: WeeklyAgenda, tz: ZoneInfo) -> Document:
    now = agenda.at
    dossiers = []
    for week in agenda.dossiers:
        d = week.dossier
        measures = "; ".join(_measure(m, tz, now) for m in week.measures) or "no measures"
        dossiers.append(
            f"{_dossier(d, now)} | {when(d.starts_at, tz)} → {when(d.ends_at, tz)} | {measures}"
        )
    assessments = [
        f"{c.assessment.dossier_ref} {c.title}: {_level(c.assessment.level)}"
        + (f" (was {_level(c.previous)})" if c.previous else " (new)")
        + f", {c.assessment.source}, {when(c.assessment.created_at, tz)}: {c.assessment.summary}"
        for c in agenda.assessments
    ]
    return Document(
        f"Weekly agenda — {when(agenda.start, tz)} to {when(agenda.end, tz)}",
        (),
        (
            Section("Events and visits, past and coming week", tuple(dossiers)),
            Section("New and changed threat assessments", tuple(assessments)),
            Section(
                "Proposals awaiting a decision", tuple(_proposal(p, tz) for p in agenda.pending)
            ),
            Section("Early-warning reports", agenda.early_warnings),
        ),
        {},
        _to_orders(m for week in agenda.dossiers for m in week.measures)
        + _to_prompts(agenda.pending),
    )


def monthly_document(agenda: MonthlyAgenda, tz: ZoneInfo) -> Document:
    sections, details = [], {}
    for kind, reviews in agenda.groups:
        items = []
        for review in reviews:
            item = _review(review, tz, agenda.at)
            items.append(item)
            details[item] = decision_commands(review.line.measure)
        sections.append(Section(f"{GROUP_NAMES[kind]} ({len(reviews)})", tuple(items)))
    sections.append(
        Section(
            f"Protected persons ({len(agenda.persons)})",
            tuple(_protected(p, tz) for p in agenda.persons),
        )
    )
    if agenda.starting:
        sections.append(
            Section(
                f"Approved, not started yet ({len(agenda.starting)})",
                tuple(_due(line, tz, agenda.at) for line in agenda.starting),
            )
        )
    month = agenda.start.astimezone(tz)
    in_force = count(agenda.count, "measure")
    return Document(
        f"Ambassades review — {month:%B %Y}, {in_force} in force",
        (
            "Each measure needs a decision: extend, limit, maintain or end. Propose it with",
            '!measure extend M-n end="<when>" <reason> | !measure limit M-n "<change>" <reason>',
            '!measure maintain M-n review="<when>" <reason> | !measure end M-n <reason>',
        ),
        tuple(sections),
        details,
        _to_orders(review.line.measure for _, reviews in agenda.groups for review in reviews),
    )


def _due(line: MeasureLine, tz: ZoneInfo, at: datetime) -> str:
    """A measure in force reads by its end and review; one still to start says so first."""
    m = line.measure
    starts = f"{state_word(m, at, tz)}, " if m.scheduled_at(at) else ""
    return (
        f"{m.ref} {m.type} for {line.dossier.ref} {line.dossier.title}: "
        f"{starts}end {when(m.ends_at, tz)}, review {when(m.review_at, tz)}"
    )


def daily_document(agenda: DailyAgenda, tz: ZoneInfo) -> Document:
    changes = [
        f"{when(c.at, tz)} {c.dossier_ref} [{c.kind}] {c.text} ({c.actor})" for c in agenda.changes
    ]
    reviews = [
        f"{d.ref} {d.title}: assessment review {when(review, tz)}"
        + (" (overdue)" if review < agenda.at else "")
        for d, review in agenda.reviews_due
    ]
    return Document(
        f"Daily digest — {when(agenda.at, tz)}",
        (),
        (
            Section("Changes in the last 24 hours", tuple(changes)),
            Section(
                "Starting, expiring or due for review within 48 hours",
                tuple(_due(line, tz, agenda.at) for line in agenda.measures_due) + tuple(reviews),
            ),
            Section(
                "Proposals awaiting a decision", tuple(_proposal(p, tz) for p in agenda.pending)
            ),
            Section(
                "Execution orders not acknowledged by the police",
                tuple(_due(line, tz, agenda.at) for line in agenda.unacknowledged),
            ),
        ),
        {},
        _to_orders(line.measure for line in (*agenda.measures_due, *agenda.unacknowledged))
        + _to_prompts(agenda.pending),
    )


def document(agenda: Agenda, tz: ZoneInfo) -> Document:
    if isinstance(agenda, WeeklyAgenda):
        return weekly_document(agenda, tz)
    if isinstance(agenda, MonthlyAgenda):
        return monthly_document(agenda, tz)
    return daily_document(agenda, tz)


def _lines(doc: Document) -> list[str]:
    lines = list(doc.intro)
    for section in doc.sections:
        lines.append(f"■ {section.heading}")
        lines += [f"  {item}" for item in section.items] or [f"  ({section.empty})"]
    return lines


def _size(line: str, linked: int = 0) -> int:
    """Bytes the line adds to a message: plain bullet and HTML item, JSON-escaped, and the
    markup of the `linked` IDs in it."""
    return len(json.dumps(line)) + len(json.dumps(escape(line))) + 16 + linked * LINK_BYTES


def parts(doc: Document, heading: str | None = None) -> list[Reply]:
    """The agenda as messages of at most PART_BYTES each, every line whole and in order;
    each message carries the links of the IDs in it."""
    title = heading or doc.title
    by_text = {link.text: link for link in doc.links}
    chunks: list[list[str]] = [[]]
    links: list[dict[str, Link]] = [{}]
    used = _size(title) + 200
    for line in _lines(doc):
        found = [by_text[word] for word in ID_WORD.findall(line) if word in by_text]
        size = _size(line, len(found))
        if chunks[-1] and used + size > PART_BYTES:
            chunks.append([])
            links.append({})
            used = _size(title) + 200
        chunks[-1].append(line)
        links[-1].update((link.text, link) for link in found)
        used += size
    if len(chunks) == 1:
        return [Reply(title, lines=tuple(chunks[0]), links=tuple(links[0].values()))]
    count = len(chunks)
    return [
        Reply(f"{title} (part {n}/{count})", lines=tuple(chunk), links=tuple(found.values()))
        for n, (chunk, found) in enumerate(zip(chunks, links, strict=True), start=1)
    ]


def markdown(doc: Document) -> bytes:
    out = [f"# {doc.title}", ""]
    out += doc.intro
    for section in doc.sections:
        out += ["", f"## {section.heading}", ""]
        if not section.items:
            out.append(f"_{section.empty}_")
        for item in section.items:
            out.append(f"- {item}")
            out += [f"  - `{extra}`" for extra in doc.details.get(item, ())]
    return ("\n".join(out) + "\n").encode()


def agenda_reply(agenda: Agenda, tz: ZoneInfo, room_id: str) -> Reply:
    """The first part answers the command; later parts follow in the same room, and a long
    agenda comes with the whole of it as a Markdown file."""
    doc = document(agenda, tz)
    replies = parts(doc)
    first = replies[0]
    attachments: tuple[Attachment, ...] = ()
    if len(replies) > 1:
        stamp = agenda.at.astimezone(tz).strftime("%Y-%m-%d")
        attachments = (
            Attachment(f"agenda-{doc.slug()}-{stamp}.md", "text/markdown", markdown(doc)),
        )
    # Later parts have no brief form: withheld, the answer goes and they stay away.
    return Reply(
        first.title,
        first.severity,
        lines=first.lines,
        links=first.links,
        also=tuple(
            Announcement(room_id, dataclasses.replace(part, carries=Data.DOSSIER))
            for part in replies[1:]
        ),
        attachments=attachments,
        carries=Data.DOSSIER,
    )


# --- reminders ------------------------------------------------------------------------------


def meeting_announcements(outcome: Reminder | Starting, tz: ZoneInfo) -> tuple[Announcement, ...]:
    occurrence = outcome.due.occurrence
    spec = occurrence.meeting
    room = RoomKey(spec.room)
    if isinstance(outcome, Starting):
        if outcome.agenda_link is not None:
            link_room, event_id = outcome.agenda_link
            agenda = f"Agenda: https://matrix.to/#/{link_room}/{event_id}"
        else:
            agenda = f"Agenda: !agenda {spec.agenda}"
        return (
            Announcement(
                room,
                Reply(f"The {spec.name} meeting is starting now", lines=(agenda,)),
            ),
        )
    offset = outcome.due.offset or timedelta(0)
    if offset:
        # Late, "in 1h" would be untrue by however long the bot was away.
        timing = (
            f"was due {when(outcome.due.due_at, tz)}, posted late"
            if outcome.late
            else f"in {offset_label(offset)}"
        )
        heading = f"Reminder: {spec.name} meeting {when(occurrence.at, tz)} ({timing})"
    else:
        heading = f"{spec.name}: {document(outcome.agenda, tz).title}"
    if outcome.late:
        heading = "LATE — " + heading
    doc = document(outcome.agenda, tz)
    replies = parts(doc, heading)
    intro = []
    if outcome.late:
        intro.append(
            f"Posted late: it was due {when(outcome.due.due_at, tz)}, "
            "while the bot was unavailable."
        )
    if occurrence.moved:
        intro.append(f"Moved from {when(occurrence.original, tz)}: {occurrence.reason or '—'}")
    first = replies[0]
    severity = Severity.WARNING if outcome.late else Severity.INFO
    replies[0] = Reply(
        first.title, severity, lines=(*intro, doc.title, *first.lines), links=first.links
    )
    if len(replies) > 1:
        # A long agenda in several messages also comes whole, as a file, after the last one.
        stamp = occurrence.at.astimezone(tz).strftime("%Y-%m-%d")
        whole = Attachment(f"agenda-{doc.slug()}-{stamp}.md", "text/markdown", markdown(doc))
        replies[-1] = dataclasses.replace(replies[-1], attachments=(whole,))
    # Cut down, the reminder keeps its heading and counts each section; later parts and
    # the file are left out.
    brief = Reply(
        first.title.split(" (part ")[0],
        severity,
        lines=(
            *intro[: int(outcome.late)],
            doc.title,
            *(f"{s.heading}: {len(s.items)}" for s in doc.sections),
            DETAILS_WITHHELD,
        ),
    )
    announcements = [
        Announcement(
            room,
            dataclasses.replace(replies[0], carries=Data.DOSSIER),
            ref=agenda_ref(occurrence, offset),
            brief=brief,
        )
    ]
    announcements += [
        Announcement(room, dataclasses.replace(part, carries=Data.DOSSIER)) for part in replies[1:]
    ]
    return tuple(announcements)


# --- the schedule ---------------------------------------------------------------------------


def occurrence_line(o: Occurrence, tz: ZoneInfo) -> str:
    text = f"{when(o.at, tz)} — {o.meeting.name} ({o.meeting.agenda} agenda, {o.meeting.room})"
    if o.skipped:
        text += f" — SKIPPED: {o.reason or 'no reason given'}"
    elif o.moved:
        text += f" — moved from {when(o.original, tz)}: {o.reason or 'no reason given'}"
    return text
