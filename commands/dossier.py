"""`!dossier …`: open, follow, search and close protection dossiers."""

from __future__ import annotations

import re
from typing import Annotated, Any

from commands.arguments import (
    End,
    Kind,
    Mine,
    Opt,
    Page,
    Rest,
    Spelled,
    Start,
    UserId,
    parse_user_id,
    register_type,
)
from commands.context import Context
from commands.declaration import command
from commands.dossier_views import scope_groups
from commands.errors import ArgumentError, shown
from commands.formatting import count, level, one_line, period, when
from commands.replies import Group, Reply, RoomRequest, Severity
from config import Role
from workflow.access import Data
from workflow.model import (
    CATEGORIES,
    Basis,
    DossierFilter,
    DossierKind,
    DossierStatus,
    TimelineEntry,
)
from workflow.persons import PersonPick
from workflow.privacy import Reader
from workflow.refs import DOSSIER_SHAPE, normal_ref
from workflow.search import Field, Hit, matches, query_words

PERSON_RE = re.compile(r"^(?P<dossier>[^/\s]+)/(?P<number>\d{1,6})$")
# An ID typed wrong (`D-2026`, `D-`), as against a word typed where an ID should be.
_ID_SHAPED = re.compile(r"[A-Za-z]{1,3}-[\d-]*")


class DossierRef(str):
    """`D-2026-0007`, however typed (`d-2026-7`); in a dossier's own room it may be left out."""


def _parse_ref(text: str, ctx: Context) -> DossierRef:
    ref = normal_ref(text)
    if ref is not None:
        return DossierRef(ref)
    if _ID_SHAPED.fullmatch(text.strip()):
        raise ArgumentError(f"{shown(text)} is not a dossier ID ({DOSSIER_SHAPE})")
    # A word where the ID should be: most likely a name the sender wants the dossier of.
    raise ArgumentError(
        f"{shown(text)} is not a dossier ID ({DOSSIER_SHAPE}); "
        f"to look for it, try {ctx.prefix}dossier find {text.strip()[:60]}"
    )


async def _room_dossier(ctx: Context) -> DossierRef:
    ref = await ctx.workflow.dossiers.for_room(ctx.room_id)
    if ref is None:
        raise ArgumentError(
            f"name the dossier ({DOSSIER_SHAPE}); only a dossier's own room may omit it"
        )
    return DossierRef(ref)


register_type(
    DossierRef,
    _parse_ref,
    name="D-id",
    omitted=_room_dossier,
    looks_like=lambda word: normal_ref(word) is not None,
)


class PersonRef(PersonPick):
    """`D-2026-0007/2`: a person named with their dossier."""


def _parse_person_ref(text: str, ctx: Context) -> PersonRef:
    match = PERSON_RE.match(text.strip())
    if not match:
        raise ArgumentError(f"{shown(text)} is not a person (D-<year>-<number>/<n>)")
    return PersonRef(int(match["number"]), _parse_ref(match["dossier"], ctx))


def _parse_person_pick(text: str, ctx: Context) -> PersonPick:
    """`D-2026-0007/2`, or `2` for the person of that number in the dossier named."""
    if text.strip().isdigit() and len(text.strip()) <= 6:
        return PersonPick(int(text.strip()))
    try:
        return _parse_person_ref(text, ctx)
    except ArgumentError:
        raise ArgumentError(
            f"{shown(text)} is not a person (D-<year>-<number>/<n>, or <n> within the dossier)"
        ) from None


register_type(PersonRef, _parse_person_ref, name="D-id/n")
register_type(PersonPick, _parse_person_pick, name="D-id/n|n")


def reader(ctx: Context, command_name: str) -> Reader:
    """Who reads a dossier with which command: every read goes to the audit trail."""
    return Reader(ctx.actor, ctx.event_id, command_name)


class ListStatus(str):
    pass


STATUSES = {"open": DossierStatus.OPEN, "closed": DossierStatus.CLOSED, "all": None}


def _parse_status(text: str, ctx: Context) -> ListStatus:
    if text.lower() not in STATUSES:
        raise ArgumentError(f"{shown(text)} is not one of: open, closed, all")
    return ListStatus(text.lower())


register_type(ListStatus, _parse_status, name="open|closed|all", choices=STATUSES)


class Category(str):
    """A dossier category; which ones a kind allows, the workflow checks (workflow/dossiers.py)."""


def _parse_category(text: str, ctx: Context) -> Category:
    return Category(text.strip().lower())


def _kinds_of(category: str) -> str:
    return ", ".join(kind for kind, valid in CATEGORIES.items() if category in valid)


register_type(
    Category,
    _parse_category,
    name="category",
    choices=[
        (category, f"for {_kinds_of(category)}")
        for category in dict.fromkeys(c for valid in CATEGORIES.values() for c in valid)
    ],
)


class Names(tuple[str, ...]):
    """Comma-separated names: the persons a dossier covers, one person each."""


def _parse_names(text: str, ctx: Context) -> Names:
    names = Names(part.strip() for part in text.split(",") if part.strip())
    if not names or any(len(n) > 200 for n in names):
        raise ArgumentError(f"{shown(text)}: give comma-separated names of at most 200 characters")
    return names


register_type(Names, _parse_names, name="name,name")


class UserList(tuple[str, ...]):
    """Comma-separated Matrix user IDs."""


def _parse_users(text: str, ctx: Context) -> UserList:
    """Each part is read as a UserId argument, so the rule lives in one place."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise ArgumentError(f"{shown(text)} is not a list of @user:server IDs")
    return UserList(parse_user_id(part, ctx) for part in parts)


register_type(UserList, _parse_users, name="@a,@b")


@command(
    "dossier open",
    role=Role.LIAISON,
    help="Open a dossier on a protected person, institution or event.",
    examples=[
        '!dossier open person "Visit of the President of X" category=head-of-state '
        'start="volgende maandag 9u" end="volgende maandag 18u" basis=status ref=BZ/2026/117',
        '!dossier open institution "Embassy of Y" category=embassy basis=threat',
        '!dossier open person "Family Z" category=threatened-person subjects="Anna Z, Bert Z"',
    ],
)
async def dossier_open(
    ctx: Context,
    kind: DossierKind,
    title: str,
    category: Opt[Category | None] = None,
    start: Opt[Start | None] = None,
    end: Opt[End | None] = None,
    basis: Opt[Basis | None] = None,
    ref: Opt[str | None] = None,
    lead: Opt[UserId | None] = None,
    subjects: Opt[Names | None] = None,
) -> Reply:
    dossier = await ctx.workflow.dossiers.open(
        ctx.actor,
        ctx.event_id,
        kind=kind,
        title=title,
        category=category,
        starts_at=start,
        ends_at=end,
        basis=basis,
        external_ref=ref,
        lead=lead,
        subjects=subjects or (),
    )
    return Reply(
        f"Opened {dossier.ref}",
        Severity.SUCCESS,
        fields=(
            ("Dossier", f"{dossier.kind}/{dossier.category}: {dossier.title}"),
            ("Period", period(dossier, ctx.tz)),
            ("Lead", dossier.lead or "—"),
            ("Persons", ", ".join(p.label for p in dossier.covered) or "—"),
        ),
        carries=Data.DOSSIER,
    )


@command(
    "dossier show",
    help="A dossier's summary; levels and measures in force, scheduled or pending per "
    "person, the dossier as a whole first; recent activity.",
    examples=["!dossier show D-2026-0007"],
)
async def dossier_show(ctx: Context, dossier: DossierRef) -> Reply:
    view = await ctx.workflow.dossiers.view(dossier, reader(ctx, "dossier show"))
    d = view.dossier
    fields = [
        ("Kind", f"{d.kind}/{d.category}"),
        ("Status", str(d.status)),
        ("Threat level", level(d, ctx.now)),
        ("Period", period(d, ctx.tz)),
        ("Basis", str(d.basis or "—")),
        ("Reference", d.external_ref or "—"),
        ("Lead", d.lead or "—"),
        ("Persons", str(len(d.covered)) if d.covered else "—"),
    ]
    if view.latest is not None:
        fields.append(("Review due", when(view.latest.review_at, ctx.tz)))
    if d.purged_at is not None:
        fields.append(("Purged", f"{when(d.purged_at, ctx.tz)} (retention: personal data removed)"))
    return Reply(
        f"{d.ref} — {d.title}",
        fields=tuple(fields),
        groups=(
            *scope_groups(d, view.scopes, ctx.now, ctx.tz),
            Group("Recent activity", tuple(_entry(e, ctx) for e in view.recent)),
        ),
        carries=Data.DOSSIER,
    )


def _entry(entry: TimelineEntry, ctx: Context) -> str:
    return f"{when(entry.at, ctx.tz)} · {entry.actor} · {entry.kind}: {entry.text}"


@command(
    "dossier list",
    help="Dossiers, newest activity first, 20 a page; `mine`: those you opened or lead.",
    examples=[
        "!dossier list",
        "!dossier list mine",
        "!dossier list kind=event level>=3",
        "!dossier list status=all page=2",
    ],
)
async def dossier_list(
    ctx: Context,
    whose: Mine | None = None,
    status: Opt[ListStatus | None] = None,
    kind: Opt[DossierKind | None] = None,
    level_min: Annotated[int | None, Kind.OPTION, Spelled("level>")] = None,
    lead: Opt[UserId | None] = None,
    page: Opt[Page | None] = None,
) -> Reply:
    if level_min is not None and not 1 <= level_min <= 4:
        raise ArgumentError("level>=: must be 1, 2, 3 or 4")
    wanted = DossierFilter(
        status=STATUSES[status or "open"],
        kind=kind,
        level_min=level_min,
        lead=lead,
        involving=ctx.actor if whose else None,
    )
    result = await ctx.workflow.dossiers.page(wanted, page or 1, reader(ctx, "dossier list"))
    if not result.dossiers:
        return Reply("No dossiers match.")
    return Reply(
        f"Dossiers {result.page}/{result.pages} ({result.total} in all)",
        lines=tuple(one_line(d, ctx.now) for d in result.dossiers),
        carries=Data.DOSSIER,
    )


@command(
    "dossier find",
    help="Search dossier IDs, titles, protected persons, categories, references and notes; "
    "case and accents do not matter, every word must match (as a word's start).",
    examples=["!dossier find israel", "!dossier find embassy ruritania", "!dossier find BZ/2026"],
)
async def dossier_find(ctx: Context, text: Rest[str]) -> Reply:
    found = await ctx.workflow.dossiers.find(text, reader(ctx, "dossier find"))
    if not found.hits:
        # Only what the sender typed in this very room.
        return Reply(f"Nothing found for “{text.strip()}”.")
    more = (
        f", the {len(found.hits)} most recently active shown"
        if found.total > len(found.hits)
        else ""
    )
    words = query_words(text)
    return Reply(
        f"{found.total} found for “{text.strip()}”{more}",
        lines=tuple(_hit(hit, words) for hit in found.hits),
        carries=Data.DOSSIER,
    )


def _hit(hit: Hit, words: list[str]) -> str:
    """`D-2026-0007 · Visit of X · open · matched: person Israël Cohen; note`."""
    d = hit.dossier
    what = []
    for field in hit.matched:
        names = [p.name for p in d.covered if matches(words, p.name)]
        if field is Field.SUBJECT and names:
            what.append(f"person {', '.join(names)}")
        else:
            what.append(str(field))
    return f"{d.ref} · {d.title} · {d.status} · matched: {'; '.join(what)}"


@command(
    "dossier note",
    role=Role.LIAISON,
    help="Add a note to a dossier's timeline.",
    examples=["!dossier note D-2026-0007 Motorcade route confirmed with the local police."],
)
async def dossier_note(ctx: Context, dossier: DossierRef, text: Rest[str]) -> Reply:
    await ctx.workflow.dossiers.note(ctx.actor, ctx.event_id, dossier, text)
    return Reply(f"Note added to {dossier}", Severity.SUCCESS)


@command(
    "dossier edit",
    role=Role.LIAISON,
    help="Change fields of an open dossier.",
    examples=['!dossier edit D-2026-0007 end="vendredi prochain 18h" lead=@anna:nccn.example'],
)
async def dossier_edit(
    ctx: Context,
    dossier: DossierRef,
    title: Opt[str | None] = None,
    category: Opt[Category | None] = None,
    start: Opt[Start | None] = None,
    end: Opt[End | None] = None,
    basis: Opt[Basis | None] = None,
    ref: Opt[str | None] = None,
    lead: Opt[UserId | None] = None,
) -> Reply:
    given: dict[str, Any] = {
        "title": title,
        "category": category,
        "starts_at": start,
        "ends_at": end,
        "basis": basis,
        "external_ref": ref,
        "lead": lead,
    }
    changes = {key: value for key, value in given.items() if value is not None}
    updated = await ctx.workflow.dossiers.edit(ctx.actor, ctx.event_id, dossier, changes)
    return Reply(
        f"Updated {updated.ref}",
        Severity.SUCCESS,
        fields=(("Period", period(updated, ctx.tz)),),
        carries=Data.DOSSIER,
    )


@command(
    "dossier person add",
    role=Role.LIAISON,
    help="Add a person to a dossier; they get the next number in it (D-2026-0007/3).",
    examples=['!dossier person add D-2026-0007 "Carla Z"'],
)
async def dossier_person_add(ctx: Context, dossier: DossierRef, name: str) -> Reply:
    person = await ctx.workflow.persons.add(ctx.actor, ctx.event_id, dossier, name)
    return Reply(
        f"Added {person.ref} to {dossier}",
        Severity.SUCCESS,
        fields=(("Name", person.name),),
        carries=Data.DOSSIER,
    )


@command(
    "dossier person rename",
    role=Role.LIAISON,
    help="Correct the name of a person in a dossier.",
    examples=['!dossier person rename D-2026-0007/2 "Bert Zeeman"'],
)
async def dossier_person_rename(ctx: Context, person: PersonRef, name: str) -> Reply:
    renamed = await ctx.workflow.persons.rename(ctx.actor, ctx.event_id, person, name)
    return Reply(
        f"Renamed {renamed.ref}",
        Severity.SUCCESS,
        fields=(("Name", renamed.name),),
        carries=Data.DOSSIER,
    )


@command(
    "dossier person remove",
    role=Role.LIAISON,
    help="Remove a person from a dossier; refused while a measure of theirs is in force or "
    "pending. Their number is not reused.",
    examples=["!dossier person remove D-2026-0007/2"],
)
async def dossier_person_remove(ctx: Context, person: PersonRef) -> Reply:
    removed = await ctx.workflow.persons.remove(ctx.actor, ctx.event_id, person)
    # IDs only: the sender named the person by number.
    return Reply(f"Removed {removed.ref} from {removed.dossier_ref}", Severity.SUCCESS)


@command(
    "dossier close",
    role=Role.LIAISON,
    help="Close a dossier; it becomes read-only.",
    examples=["!dossier close D-2026-0007 visit ended without incident"],
)
async def dossier_close(ctx: Context, dossier: DossierRef, reason: Rest[str]) -> Reply:
    await ctx.workflow.dossiers.close(ctx.actor, ctx.event_id, dossier, reason)
    # The reason is the sender's own words, already in this room: nothing new to withhold.
    return Reply(f"Closed {dossier}", Severity.SUCCESS, fields=(("Reason", reason),))


@command(
    "dossier reopen",
    role=Role.LIAISON,
    help="Reopen a closed dossier.",
    examples=["!dossier reopen D-2026-0007 new threats reported"],
)
async def dossier_reopen(ctx: Context, dossier: DossierRef, reason: Rest[str]) -> Reply:
    await ctx.workflow.dossiers.reopen(ctx.actor, ctx.event_id, dossier, reason)
    return Reply(f"Reopened {dossier}", Severity.SUCCESS, fields=(("Reason", reason),))


@command(
    "dossier timeline",
    help="Every assessment, note, change and decision on a dossier.",
    examples=["!dossier timeline D-2026-0007"],
)
async def dossier_timeline(ctx: Context, dossier: DossierRef) -> Reply:
    entries = await ctx.workflow.dossiers.timeline(dossier, reader(ctx, "dossier timeline"))
    return Reply(
        f"Timeline of {dossier} ({count(len(entries), 'entry', 'entries')})",
        lines=tuple(_entry(e, ctx) for e in entries),
        carries=Data.DOSSIER,
    )


@command(
    "dossier room",
    role=Role.LIAISON,
    help="Create an encrypted room for a dossier; in it, dossier commands may omit the ID.",
    examples=["!dossier room D-2026-0007 invite=@anna:nccn.example,@bert:police.example"],
)
async def dossier_room(
    ctx: Context, dossier: DossierRef, invite: Opt[UserList | None] = None
) -> Reply:
    d = await ctx.workflow.dossiers.request_room(ctx.actor, ctx.event_id, dossier, invite or ())
    # IDs only: the welcome is posted by the runtime once the room exists, outside the
    # audience check of this reply; the content is one `dossier show` away.
    welcome = Reply(
        f"Room of {d.ref}",
        lines=(f"Dossier commands here may leave out the ID, e.g. {ctx.prefix}dossier show",),
    )
    return Reply(
        f"Creating the room of {d.ref}",
        Severity.SUCCESS,
        fields=(("Invited", ", ".join([ctx.actor, *(invite or ())])),),
        room=RoomRequest(
            dossier_ref=d.ref,
            # Room state is never end-to-end encrypted: name and topic carry the ID only.
            name=d.ref,
            topic=f"Aegis dossier {d.ref}",
            invite=tuple(dict.fromkeys([ctx.actor, *(invite or ())])),
            welcome=welcome,
        ),
    )
