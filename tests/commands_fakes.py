"""A test command set and a context whose workflow records refusals in memory."""

from __future__ import annotations

import enum
import re
import sys
from datetime import UTC, datetime
from typing import Any, NewType
from zoneinfo import ZoneInfo

from commands import (
    ArgumentError,
    Context,
    Opt,
    Registry,
    Reply,
    Rest,
    UserId,
    command,
    core,
    register_type,
)
from config import Role
from workflow import AccessPolicy, RuntimeInfo, Workflow

NOW = datetime(2026, 3, 4, 10, 30, tzinfo=UTC)  # a Wednesday; 11:30 in Brussels
BRUSSELS = ZoneInfo("Europe/Brussels")
ROOM_DOSSIERS = {"!ops:example.org": "D-2026-0001"}


class RecordingSink:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    async def append_audit(self, **row: Any) -> int:
        self.rows.append(row)
        return len(self.rows)

    async def role_changes(self, user_id: str) -> dict[str, bool]:
        return {}


def make_context(
    *roles: Role, room_id: str = "!ops:example.org", prefix: str = "!"
) -> tuple[Context, RecordingSink]:
    sink = RecordingSink()
    access = AccessPolicy(roles={}, allowed_servers=frozenset(), home_server="example.org")
    info = RuntimeInfo(version="0.1.0", started_at=datetime(2026, 3, 4, 8, 27, tzinfo=UTC))
    workflow = Workflow(sink, NOW, access, info)
    ctx = Context(
        actor="@alice:example.org",
        roles=frozenset(roles),
        room_id=room_id,
        event_id="$event",
        now=NOW,
        tz=BRUSSELS,
        prefix=prefix,
        workflow=workflow,
    )
    return ctx, sink


class ThreatLevel(enum.StrEnum):
    LOW = "1"
    MEDIUM = "2"
    HIGH = "3"


class Source(enum.StrEnum):
    OCAD = "OCAD"
    POLICE = "police"
    OPEN = "open"


DossierRef = NewType("DossierRef", str)
_DOSSIER = re.compile(r"D-\d{4}-\d{4}", re.IGNORECASE)


async def parse_dossier(text: str, ctx: Context) -> DossierRef:
    if not _DOSSIER.fullmatch(text):
        raise ArgumentError(f"{text!r} is not a dossier reference like D-2026-0007")
    return DossierRef(text.upper())


def room_dossier(ctx: Context) -> DossierRef:
    if ctx.room_id not in ROOM_DOSSIERS:
        raise ArgumentError("this room has no dossier; name one like D-2026-0007")
    return DossierRef(ROOM_DOSSIERS[ctx.room_id])


register_type(
    DossierRef,
    parse_dossier,
    name="dossier",
    omitted=room_dossier,
    looks_like=lambda text: text[:2].upper() == "D-",
)

calls: list[dict[str, Any]] = []


@command(
    "threat log",
    role=Role.ANALYST,
    help="Log a threat assessment on a dossier.",
    examples=["!threat log D-2026-0007 level=3 source=OCAD online threats"],
    aliases=("tl",),
)
async def threat_log(
    ctx: Context,
    dossier: DossierRef,
    level: Opt[ThreatLevel],
    source: Opt[Source],
    summary: Rest[str],
    review: Opt[datetime | None] = None,
) -> Reply:
    calls.append(
        {"dossier": dossier, "level": level, "source": source, "summary": summary, "review": review}
    )
    return Reply("logged")


@command("threat list", role=Role.ANALYST, help="List the threats on a dossier.")
async def threat_list(ctx: Context, dossier: DossierRef) -> Reply:
    calls.append({"dossier": dossier})
    return Reply("listed")


@command("grant", role=Role.ADMIN, help="Give a user a role.", examples=["!grant @bob:x analyst"])
async def grant(ctx: Context, user: UserId, role: Role, notify: Opt[bool] = True) -> Reply:
    calls.append({"user": user, "role": role, "notify": notify})
    return Reply("granted")


@command("count", help="Count something.")
async def count(ctx: Context, amount: int, unit: str = "items") -> Reply:
    calls.append({"amount": amount, "unit": unit})
    return Reply("counted")


@command("remind", help="Set a reminder.")
async def remind(ctx: Context, at: Opt[datetime], note: Rest[str]) -> Reply:
    calls.append({"at": at, "note": note})
    return Reply("reminded")


@command("note", help="Take a note.")
async def note(ctx: Context, title: str, body: Rest[str] = "") -> Reply:
    calls.append({"title": title, "body": body})
    return Reply("noted")


@command("crash", help="A handler bug.")
async def crash(ctx: Context) -> Reply:
    raise RuntimeError("handler bug")


test_registry = Registry.from_modules(core, sys.modules[__name__])
