"""The audience check without a homeserver: who in a room is cleared for what, the
pipeline's choice between the answer, the withheld notice and the brief form, and the
sender's last check before a post goes out."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from nio import RoomMessageText, RoomSendResponse
from sqlalchemy import select

from bot.audience import WITHHELD_TITLE, Audience
from bot.backoff import Backoff
from bot.pipeline import Pipeline
from bot.render import MESSAGE, UPLOAD
from bot.sender import Sender
from commands import Announcement, Context, Reply, command
from commands.replies import Attachment, RoomKey
from config import Role
from storage import outbox
from storage.db import Database
from storage.store import Store
from storage.tables import AuditEntry, OutboxMessage
from tests.support.pipeline import INFO, FixedClock, pipeline_for
from tests.support.rooms import FakeRoom, make_audience, rooms_with
from workflow import AccessPolicy
from workflow.access import Data
from workflow.privacy import Reader

BOT = "@aegis:aegis.test"
LIAISON = "@liz:aegis.test"
POLICE = "@pol:aegis.test"
WARNER = "@wanda:aegis.test"
STRANGER = "@stranger:aegis.test"
FOREIGN = "@liz:elsewhere.test"
MODBOT = "@mod:aegis.test"
ROOMS = {key: f"!{key.value}:aegis.test" for key in RoomKey}
COORDINATION = ROOMS[RoomKey.COORDINATION]
APPROVALS = ROOMS[RoomKey.APPROVALS]


ACCESS = AccessPolicy(
    roles={
        LIAISON: frozenset({Role.LIAISON}),
        POLICE: frozenset({Role.POLICE}),
        WARNER: frozenset({Role.WARNING_APPROVER}),
        FOREIGN: frozenset({Role.LIAISON}),
    },
    allowed_servers=frozenset(),
    home_server="aegis.test",
    service_accounts=frozenset({MODBOT}),
)
SECRET = "Visit of the President of X"


@command("secret", help="Shows dossier content.")
async def secret(ctx: Context) -> Reply:
    return Reply(
        "D-2026-0001",
        fields=(("Title", SECRET),),
        attachments=(Attachment("D-2026-0001.md", "text/markdown", SECRET.encode()),),
        carries=Data.DOSSIER,
    )


def prompt(n: int) -> Announcement:
    return Announcement(
        RoomKey.APPROVALS,
        Reply(f"Approval needed: P-{n}", fields=(("Dossier", SECRET),), carries=Data.DOSSIER),
        ref=f"prompt-{n}",
        reactions=("✅",),
        brief=Reply(f"Approval needed: P-{n}", fields=(("Dossier", "D-2026-0001"),)),
    )


@command("peek", help="Reads a dossier, as show does.")
async def peek(ctx: Context) -> Reply:
    await ctx.workflow.privacy.read(Reader(ctx.actor, ctx.event_id, "peek"), "D-2026-0001")
    return Reply("D-2026-0001", fields=(("Title", SECRET),), carries=Data.DOSSIER)


@command("propose", help="Announces a prompt in the approvals room.")
async def propose(ctx: Context, n: int) -> Reply:
    return Reply(f"Proposed P-{n}", also=(prompt(n),))


@pytest.fixture
def rooms() -> dict[str, FakeRoom]:
    return rooms_with(ROOMS.values(), BOT, LIAISON)


@pytest.fixture
def audience(rooms: dict[str, FakeRoom]) -> Audience:
    return make_audience(ACCESS, rooms, BOT, COORDINATION, FixedClock(), INFO)


@pytest.fixture
def pipeline(database: Database, rooms: dict[str, FakeRoom], audience: Audience) -> Pipeline:
    return pipeline_for(database, __name__, ACCESS, ROOMS, rooms, BOT, audience=audience)


def message(event_id: str, body: str, sender: str = LIAISON) -> RoomMessageText:
    return RoomMessageText.from_dict(
        {
            "event_id": event_id,
            "sender": sender,
            "origin_server_ts": 1,
            "type": "m.room.message",
            "content": {"msgtype": "m.text", "body": body},
        }
    )


async def pending(db: Database) -> list[outbox.PendingMessage]:
    async with db.snapshot() as session:
        return await outbox.pending(session)


async def audit_actions(db: Database) -> list[tuple[str, str, dict[str, Any]]]:
    async with db.snapshot() as session:
        rows = await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
        return [(r.actor, r.action, json.loads(r.detail)) for r in rows]


async def verdict_of(db: Database, audience: Audience, room_id: str) -> Any:
    async with db.snapshot() as session:
        return await audience.verdict(session, room_id)


# --- the verdict ------------------------------------------------------------------------------


async def test_each_member_needs_a_role_that_may_read_it(
    database: Database, audience: Audience, rooms: dict[str, FakeRoom]
) -> None:
    rooms[COORDINATION].join(POLICE, WARNER, MODBOT).invite(STRANGER, FOREIGN)
    verdict = await verdict_of(database, audience, COORDINATION)
    # Invited counts like joined; the bot itself and the service account never block.
    assert verdict.not_cleared(Data.DOSSIER) == (FOREIGN, POLICE, STRANGER, WARNER)
    assert verdict.not_cleared(Data.EXECUTION) == (FOREIGN, STRANGER, WARNER)
    assert verdict.not_cleared(Data.EARLY_WARNING) == (FOREIGN, POLICE, STRANGER)
    assert not verdict.allows(Data.DOSSIER) and verdict.allows(None)


async def test_an_unencrypted_room_reads_nothing_personal(
    database: Database, audience: Audience, rooms: dict[str, FakeRoom]
) -> None:
    rooms[COORDINATION].encrypted = False
    verdict = await verdict_of(database, audience, COORDINATION)
    assert verdict.not_cleared(Data.DOSSIER) == ()
    assert not verdict.allows(Data.DOSSIER) and verdict.allows(None)
    assert audience.unencrypted == {COORDINATION}
    rooms[COORDINATION].encrypted = True
    assert (await verdict_of(database, audience, COORDINATION)).allows(Data.DOSSIER)
    assert audience.unencrypted == set()


async def test_the_cached_verdict_follows_members_and_roles(
    database: Database, audience: Audience, rooms: dict[str, FakeRoom]
) -> None:
    rooms[COORDINATION].join(STRANGER)
    first = await verdict_of(database, audience, COORDINATION)
    assert first is await verdict_of(database, audience, COORDINATION)  # cached
    async with database.transaction() as session:
        await Store(session).set_role(STRANGER, "analyst", True, LIAISON, FixedClock().now())
    assert (await verdict_of(database, audience, COORDINATION)).allows(Data.DOSSIER)
    rooms[COORDINATION].invite(POLICE)
    assert (await verdict_of(database, audience, COORDINATION)).not_cleared(Data.DOSSIER) == (
        POLICE,
    )
    rooms[COORDINATION].leave(POLICE)
    assert (await verdict_of(database, audience, COORDINATION)).allows(Data.DOSSIER)


# --- the pipeline's choice --------------------------------------------------------------------


async def test_an_answer_the_room_may_read_is_queued_with_its_last_check(
    pipeline: Pipeline, database: Database
) -> None:
    await pipeline.handle(COORDINATION, message("$1", "!secret"))
    answer, file = await pending(database)
    assert SECRET in answer.content["body"]
    assert answer.audience == {"carries": "dossier", "reply_to": "$1", "actor": LIAISON}
    assert file.event_type == UPLOAD and file.audience == {**answer.audience, "file": True}


async def test_an_answer_for_an_uncleared_member_is_withheld_naming_them(
    pipeline: Pipeline, database: Database, rooms: dict[str, FakeRoom]
) -> None:
    rooms[COORDINATION].join(STRANGER, POLICE)
    await pipeline.handle(COORDINATION, message("$1", "!secret"))
    [answer] = await pending(database)  # no file either
    body = answer.content["body"]
    assert WITHHELD_TITLE in body and f"Not cleared: {POLICE}, {STRANGER}" in body
    assert SECRET not in body and answer.audience is None
    assert answer.content["m.relates_to"] == {"m.in_reply_to": {"event_id": "$1"}}
    [(actor, action, detail)] = await audit_actions(database)
    assert (actor, action) == (LIAISON, "audience.withheld")
    assert detail["not_cleared"] == [POLICE, STRANGER] and detail["data"] == "dossier"


async def test_a_withheld_answer_records_no_read_and_a_shown_one_does(
    pipeline: Pipeline, database: Database, rooms: dict[str, FakeRoom]
) -> None:
    rooms[COORDINATION].join(STRANGER)
    await pipeline.handle(COORDINATION, message("$1", "!peek"))
    assert [a for _, a, _ in await audit_actions(database)] == ["audience.withheld"]
    rooms[COORDINATION].leave(STRANGER)
    await pipeline.handle(COORDINATION, message("$2", "!peek"))
    actions = await audit_actions(database)
    assert [a for _, a, _ in actions] == ["audience.withheld", "dossier.read"]
    assert actions[-1][2] == {"command": "peek", "dossiers": ["D-2026-0001"]}


async def test_answers_without_personal_data_go_anywhere(
    pipeline: Pipeline, database: Database, rooms: dict[str, FakeRoom]
) -> None:
    rooms[COORDINATION].join(STRANGER).encrypted = False
    await pipeline.handle(COORDINATION, message("$1", "!ping"))
    [answer] = await pending(database)
    assert answer.content["body"].startswith("pong") and answer.audience is None


async def test_automated_posts_are_cut_to_their_brief_and_coordination_alerted_once(
    pipeline: Pipeline, database: Database, rooms: dict[str, FakeRoom]
) -> None:
    rooms[APPROVALS].join(STRANGER)
    await pipeline.handle(COORDINATION, message("$1", "!propose 1"))
    await pipeline.handle(COORDINATION, message("$2", "!propose 2"))
    rows = await pending(database)
    prompts = [r for r in rows if r.room_id == APPROVALS and r.event_type == MESSAGE]
    assert [p.content["body"].splitlines()[0] for p in prompts] == [
        "Approval needed: P-1",
        "Approval needed: P-2",
    ]
    assert all(SECRET not in p.content["body"] and p.audience is None for p in prompts)
    # The brief keeps the ref and the bot's reactions: a cut prompt still collects votes.
    assert any(r.event_type == "m.reaction" and r.room_id == APPROVALS for r in rows)
    alerts = [
        r for r in rows if r.room_id == COORDINATION and "Audience check" in r.content["body"]
    ]
    assert len(alerts) == 1
    assert f"Not cleared: {STRANGER}" in alerts[0].content["body"]
    assert APPROVALS in alerts[0].content["body"]
    actions = [a for _, a, _ in await audit_actions(database)]
    assert actions == ["audience.cut", "audience.cut"]
    # Someone else uncleared: that is news, and alerted once more.
    rooms[APPROVALS].invite(POLICE)
    await pipeline.handle(COORDINATION, message("$3", "!propose 3"))
    alerts = [
        r
        for r in await pending(database)
        if r.room_id == COORDINATION and "Audience check" in r.content["body"]
    ]
    assert len(alerts) == 2


async def test_a_post_that_passes_keeps_its_brief_for_the_sender(
    pipeline: Pipeline, database: Database
) -> None:
    await pipeline.handle(COORDINATION, message("$1", "!propose 1"))
    [prompt_row] = [r for r in await pending(database) if r.room_id == APPROVALS and r.audience]
    assert SECRET in prompt_row.content["body"]
    assert prompt_row.audience is not None
    assert prompt_row.audience["carries"] == "dossier"
    assert SECRET not in prompt_row.audience["brief"]["body"]


def test_a_brief_carries_nothing() -> None:
    with pytest.raises(ValueError):
        Announcement(
            RoomKey.APPROVALS,
            Reply("x", carries=Data.DOSSIER),
            brief=Reply("y", carries=Data.DOSSIER),
        )


# --- the sender's last check ------------------------------------------------------------------


class Homeserver:
    """Takes every message; remembers what it was sent."""

    def __init__(self, rooms: dict[str, FakeRoom]) -> None:
        self.rooms = rooms
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def room_send(self, room_id: str, _type: str, content: dict[str, Any], **_: Any) -> Any:
        self.sent.append((room_id, content))
        return RoomSendResponse(f"$sent{len(self.sent)}", room_id)


async def drain(
    database: Database,
    audience: Audience,
    rooms: dict[str, FakeRoom],
    kinds: tuple[str, ...] = (MESSAGE, UPLOAD),
) -> Homeserver:
    """Delivers the pending rows of those kinds (this homeserver takes no uploads: a file
    row must be withdrawn before it gets that far)."""
    server = Homeserver(rooms)
    sender = Sender(server, database, FixedClock(), asyncio.Event(), audience)  # type: ignore[arg-type]
    for row in await pending(database):
        if row.event_type in kinds:
            await sender._deliver(row, Backoff(first=0.01, cap=0.01))
    await sender._settle_marks()
    return server


async def test_the_sender_withholds_an_answer_if_someone_joined_since(
    pipeline: Pipeline, database: Database, audience: Audience, rooms: dict[str, FakeRoom]
) -> None:
    await pipeline.handle(COORDINATION, message("$1", "!secret"))
    rooms[COORDINATION].invite(STRANGER)
    server = await drain(database, audience, rooms)
    [(_, content)] = server.sent
    assert WITHHELD_TITLE in content["body"] and f"Not cleared: {STRANGER}" in content["body"]
    assert content["m.relates_to"] == {"m.in_reply_to": {"event_id": "$1"}}
    async with database.snapshot() as session:
        stored = list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
    # Nothing personal stays behind: the row keeps what was posted, the file row nothing.
    assert all(SECRET not in row.content and row.audience is None for row in stored)
    assert stored[1].error is not None and stored[1].content == "{}"
    # Audited for the answer and for its file; no coordination alert, the requester knows.
    assert [a for _, a, _ in await audit_actions(database)] == ["audience.withheld"] * 2
    assert not [r for r in await pending(database) if "Audience check" in r.content["body"]]


async def test_the_sender_falls_back_to_the_brief_and_alerts_once(
    pipeline: Pipeline, database: Database, audience: Audience, rooms: dict[str, FakeRoom]
) -> None:
    await pipeline.handle(COORDINATION, message("$1", "!propose 1"))
    await pipeline.handle(COORDINATION, message("$2", "!propose 2"))
    rooms[APPROVALS].encrypted = False
    server = await drain(database, audience, rooms, kinds=(MESSAGE,))
    bodies = [c["body"] for r, c in server.sent if r == APPROVALS]
    assert len(bodies) == 2 and all(SECRET not in b for b in bodies)
    alerts = [
        r
        for r in await pending(database)
        if r.room_id == COORDINATION and "Audience check" in r.content["body"]
    ]
    assert len(alerts) == 1 and "not end-to-end encrypted" in alerts[0].content["body"]


async def test_the_sender_sends_in_full_when_the_room_is_still_cleared(
    pipeline: Pipeline, database: Database, audience: Audience, rooms: dict[str, FakeRoom]
) -> None:
    await pipeline.handle(COORDINATION, message("$1", "!secret"))
    server = await drain(database, audience, rooms, kinds=(MESSAGE,))
    [(_, content)] = server.sent
    assert SECRET in content["body"]
    async with database.snapshot() as session:
        [row, _file] = list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
    assert row.audience is None and row.sent_event_id == "$sent1"


# --- honest tags and briefs -------------------------------------------------------------------


def _seen(reply: Reply) -> str:
    return "\n".join([reply.title, *reply.lines, *(f"{k}: {v}" for k, v in reply.fields)])


async def test_the_approval_flow_tags_its_posts_and_briefs_carry_no_content(
    database: Database,
) -> None:
    from commands.measure_views import reacted
    from tests.test_measures import CHIEF, MINA, dossier, make_chat, propose

    chat = make_chat(database)
    ref = await dossier(chat)
    proposed = await propose(chat, ref, who=CHIEF, extra="urgent=yes")
    result = await chat.react(MINA, f"$prompt-{proposed.title.split()[1].rstrip(':')}")
    posts = [*proposed.also, *reacted(result, ZoneInfo("Europe/Brussels"))]
    kinds = {a.reply.title.split()[0]: a.reply.carries for a in posts}
    assert kinds["Approval"] is Data.DOSSIER and kinds["PROVISIONAL"] is Data.EXECUTION
    content = ("Visit of the President", "visit programme", "SERIOUS", "credible threat")
    for post in posts:
        if post.reply.carries is None:
            assert not any(word in _seen(post.reply) for word in content), _seen(post.reply)
            continue
        assert post.brief is not None, post.reply.title
        assert ref in _seen(post.brief)
        assert not any(word in _seen(post.brief) for word in content), _seen(post.brief)
