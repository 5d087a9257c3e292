"""Answers where people are, on a real database without a homeserver: in the thread a
command was typed in, once for an edit that fixes a typo, as one message when a reply and
an announcement go to the same room, and in a direct chat."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nio import RoomMessageText, RoomSendResponse
from sqlalchemy import text

from bot.backoff import Backoff
from bot.pipeline import Pipeline
from bot.sender import Sender
from commands import Announcement, Context, Reply, command
from commands.replies import Attachment, RoomKey
from config import Role
from storage import outbox
from storage.db import Database
from tests.support.pipeline import FixedClock, pipeline_for
from tests.support.rooms import FakeRoom, rooms_with
from workflow import AccessPolicy
from workflow.access import Data

ROOM = "!coordination"
DIRECT = "!direct"
GROUP = "!group"
ALICE = "@alice:aegis.test"
BOB = "@bob:aegis.test"
BOT = "@aegis:aegis.test"


@command("count", help="Counts to a number; a test command that writes.")
async def count(ctx: Context, upto: int) -> Reply:
    await ctx.workflow.audit(ctx.actor, "counted", str(upto), ctx.event_id)
    return Reply(f"counted to {upto}")


@command("tell", help="Answers and tells coordination; a test command.")
async def tell(ctx: Context, ref: str = "") -> Reply:
    told = Announcement(
        RoomKey.COORDINATION,
        Reply("told coordination"),
        ref=ref or None,
        reactions=("✅",) if ref else (),
    )
    return Reply("answered", also=(told,))


@command("tell-secret", help="Answers and tells coordination what only liaisons read.")
async def tell_secret(ctx: Context) -> Reply:
    told = Announcement(
        RoomKey.COORDINATION,
        Reply("secret for coordination", carries=Data.DOSSIER),
        brief=Reply("something changed"),
    )
    return Reply("answered", also=(told,), carries=Data.DOSSIER)


@pytest.fixture
def state() -> dict[str, FakeRoom]:
    found = rooms_with([f"!{key.value}" for key in RoomKey], ALICE, BOB, BOT)
    found[DIRECT] = FakeRoom().join(ALICE, BOT)
    found[GROUP] = FakeRoom().join(ALICE, BOB, BOT)
    return found


@pytest.fixture
def pipeline(database: Database, state: dict[str, FakeRoom]) -> Pipeline:
    rooms = {key: f"!{key.value}" for key in RoomKey}
    access = AccessPolicy(
        {ALICE: frozenset({Role.LIAISON}), BOB: frozenset({Role.LIAISON})},
        frozenset(),
        "aegis.test",
    )
    return pipeline_for(database, __name__, access, rooms, state, BOT)


def message(event_id: str, body: str, sender: str = ALICE, **extra: Any) -> RoomMessageText:
    return RoomMessageText.from_dict(
        {
            "event_id": event_id,
            "sender": sender,
            "origin_server_ts": 1,
            "type": "m.room.message",
            "content": {"msgtype": "m.text", "body": body, **extra},
        }
    )


def edit_of(original: str, event_id: str, body: str, sender: str = ALICE) -> RoomMessageText:
    relation = {"rel_type": "m.replace", "event_id": original}
    new = {"msgtype": "m.text", "body": body}
    return message(
        event_id, f"* {body}", sender, **{"m.new_content": new, "m.relates_to": relation}
    )


async def posted(db: Database) -> list[outbox.PendingMessage]:
    async with db.transaction() as s:
        return await outbox.pending(s)


async def bodies(db: Database) -> list[str]:
    return [m.content["body"] for m in await posted(db)]


async def counted(db: Database) -> int:
    async with db.transaction() as s:
        query = text("SELECT count(*) FROM audit_log WHERE action = 'counted'")
        return int((await s.execute(query)).scalar() or 0)


# ---------------------------------------------------------------------------- threads


async def test_a_command_in_a_thread_is_answered_in_that_thread(
    pipeline: Pipeline, database: Database
) -> None:
    in_thread = {"m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}
    await pipeline.handle(ROOM, message("$1", "!ping", **in_thread))
    [reply] = await posted(database)
    assert reply.content["body"].startswith("pong")
    assert reply.content["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": "$root",
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": "$1"},
    }


@command("fail", help="Always fails; a test command.")
async def fail(ctx: Context) -> Reply:
    raise RuntimeError("boom")


async def test_an_internal_error_is_answered_in_the_thread(
    pipeline: Pipeline, database: Database
) -> None:
    in_thread = {"m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}
    await pipeline.handle(ROOM, message("$1", "!fail", **in_thread))
    [reply] = await posted(database)
    assert "Internal error" in reply.content["body"]
    assert reply.content["m.relates_to"]["event_id"] == "$root"


@command("file", help="Answers with a file; a test command.")
async def file(ctx: Context) -> Reply:
    return Reply("here", attachments=(Attachment("a.md", "text/markdown", b"# A"),))


async def test_a_file_answer_goes_in_the_thread(pipeline: Pipeline, database: Database) -> None:
    in_thread = {"m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}
    await pipeline.handle(ROOM, message("$1", "!file", **in_thread))
    _, upload = await posted(database)
    assert upload.content["thread_root"] == "$root" and upload.content["in_reply_to"] == "$1"


async def test_a_withheld_answer_stays_in_its_thread(
    pipeline: Pipeline, database: Database
) -> None:
    in_thread = {"m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}
    await pipeline.handle(ROOM, message("$1", "!tell-secret", **in_thread))
    [reply] = await posted(database)
    assert reply.audience is not None and reply.audience["thread"] == "$root"


# ---------------------------------------------------------------------------- edits


async def test_an_edit_fixing_a_typo_runs_once(pipeline: Pipeline, database: Database) -> None:
    await pipeline.handle(ROOM, message("$1", "!count three"))
    fixed = edit_of("$1", "$2", "!count 3")
    await pipeline.handle(ROOM, fixed)
    await pipeline.handle(ROOM, fixed)  # replayed
    await pipeline.handle(ROOM, edit_of("$1", "$3", "!count 4"))  # edited again
    assert await counted(database) == 1
    usage, done, again = await posted(database)
    assert "not a whole number" in usage.content["body"]
    assert done.content["body"] == "counted to 3"
    assert done.content["m.relates_to"] == {"m.in_reply_to": {"event_id": "$1"}}
    assert again.content["body"].startswith("⚠️ Already done; send a new command")


async def test_an_edit_that_still_fails_to_parse_leaves_the_command_open(
    pipeline: Pipeline, database: Database
) -> None:
    await pipeline.handle(ROOM, message("$1", "!count three"))
    await pipeline.handle(ROOM, edit_of("$1", "$2", "!count drei"))
    await pipeline.handle(ROOM, edit_of("$1", "$3", "!count 3"))
    assert await counted(database) == 1
    assert (await bodies(database))[-1] == "counted to 3"


async def test_an_edit_of_a_command_that_took_effect_is_answered_already_done(
    pipeline: Pipeline, database: Database
) -> None:
    await pipeline.handle(ROOM, message("$1", "!count 3"))
    await pipeline.handle(ROOM, edit_of("$1", "$2", "!count 4"))
    assert await counted(database) == 1
    assert (await bodies(database))[-1].startswith("⚠️ Already done; send a new command")


async def test_edits_of_others_and_of_non_commands_are_ignored(
    pipeline: Pipeline, database: Database
) -> None:
    await pipeline.handle(ROOM, message("$1", "!count three"))
    await pipeline.handle(ROOM, edit_of("$1", "$2", "!count 3", sender=BOB))
    await pipeline.handle(ROOM, message("$3", "hello"))
    await pipeline.handle(ROOM, edit_of("$3", "$4", "!count 3"))
    assert await counted(database) == 0
    assert len(await posted(database)) == 1  # the usage error, nothing more


async def test_an_edit_in_a_thread_is_answered_in_the_thread(
    pipeline: Pipeline, database: Database
) -> None:
    in_thread = {"m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}
    await pipeline.handle(ROOM, message("$1", "!count three", **in_thread))
    await pipeline.handle(ROOM, edit_of("$1", "$2", "!count 3"))
    fixed = (await posted(database))[-1]
    assert fixed.content["m.relates_to"]["event_id"] == "$root"
    assert fixed.content["m.relates_to"]["m.in_reply_to"] == {"event_id": "$1"}


# ---------------------------------------------------------------------------- merged


async def test_a_reply_and_an_announcement_to_its_room_are_one_message(
    pipeline: Pipeline, database: Database
) -> None:
    await pipeline.handle(ROOM, message("$1", "!tell"))
    [one] = await posted(database)
    assert one.content["body"] == "answered\n\ntold coordination"
    assert one.content["m.relates_to"] == {"m.in_reply_to": {"event_id": "$1"}}


async def test_an_announcement_for_reactions_keeps_its_own_message(
    pipeline: Pipeline, database: Database
) -> None:
    await pipeline.handle(ROOM, message("$1", "!tell prompt:1"))
    reply, prompt, reaction = await posted(database)
    assert reply.content["body"] == "answered"
    assert prompt.content["body"] == "told coordination"
    assert reaction.event_type == "m.reaction"


async def test_an_announcement_elsewhere_is_not_merged(
    pipeline: Pipeline, database: Database
) -> None:
    await pipeline.handle("!operations", message("$1", "!tell"))
    reply, told = await posted(database)
    assert (reply.room_id, told.room_id) == ("!operations", ROOM)


async def test_a_merged_message_keeps_the_announcements_brief_if_withheld(
    pipeline: Pipeline, database: Database
) -> None:
    await pipeline.handle(ROOM, message("$1", "!tell-secret"))
    [one] = await posted(database)
    assert one.content["body"] == "answered\n\nsecret for coordination"
    assert one.audience is not None
    assert one.audience["reply_to"] == "$1"
    assert one.audience["keep"]["body"] == "something changed"


# ---------------------------------------------------------------------------- direct chats


async def test_a_direct_chat_answers_reads(pipeline: Pipeline, database: Database) -> None:
    assert await pipeline.handle(DIRECT, message("$1", "!ping"))
    [reply] = await posted(database)
    assert reply.room_id == DIRECT and reply.content["body"].startswith("pong")


async def test_a_direct_chat_points_writes_to_coordination_and_audits(
    pipeline: Pipeline, database: Database
) -> None:
    await pipeline.handle(DIRECT, message("$1", "!count 3"))
    [reply] = await posted(database)
    assert reply.content["body"].startswith("⚠️ Use !count in the coordination room")
    assert await counted(database) == 0
    async with database.transaction() as s:
        query = text("SELECT count(*) FROM audit_log WHERE action = 'refused:count'")
        assert (await s.execute(query)).scalar() == 1


async def test_a_room_of_three_is_no_direct_chat(pipeline: Pipeline, database: Database) -> None:
    assert not await pipeline.handle(GROUP, message("$1", "!ping"))
    assert await posted(database) == []


async def test_a_user_without_a_role_is_told_once_where_aegis_works(
    pipeline: Pipeline, database: Database
) -> None:
    async with database.transaction() as session:
        await pipeline.turn_away(session, DIRECT, "@eve:aegis.test")
    line, leave = await posted(database)
    assert line.room_id == DIRECT and "coordination room" in line.content["body"]
    assert line.content["m.mentions"] == {"user_ids": ["@eve:aegis.test"]}
    assert leave.event_type == "aegis.leave" and leave.room_id == DIRECT


@command("tell-long", help="Answers at length and tells coordination the rest.")
async def tell_long(ctx: Context) -> Reply:
    rest = Announcement(RoomKey.COORDINATION, Reply("part 2/2", lines=("x" * 9_000,)))
    return Reply("part 1/2", lines=("y" * 9_000,), also=(rest,))


async def test_long_parts_are_not_merged(pipeline: Pipeline, database: Database) -> None:
    await pipeline.handle(ROOM, message("$1", "!tell-long"))
    first, second = await posted(database)
    assert first.content["body"].startswith("part 1/2")
    assert second.content["body"].startswith("part 2/2")


class Homeserver:
    """Takes every message; remembers what it was sent."""

    def __init__(self, rooms: dict[str, FakeRoom]) -> None:
        self.rooms = rooms
        self.sent: list[dict[str, Any]] = []

    async def room_send(self, room_id: str, _type: str, content: dict[str, Any], **_: Any) -> Any:
        self.sent.append(content)
        return RoomSendResponse(f"$sent{len(self.sent)}", room_id)


async def test_a_merged_answer_withheld_at_sending_keeps_the_brief_and_its_thread(
    pipeline: Pipeline, database: Database, state: dict[str, FakeRoom]
) -> None:
    in_thread = {"m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}}
    await pipeline.handle(ROOM, message("$1", "!tell-secret", **in_thread))
    state[ROOM].invite("@eve:aegis.test")  # joined since: may not read it
    server = Homeserver(state)
    sender = Sender(server, database, FixedClock(), asyncio.Event(), pipeline.audience)  # type: ignore[arg-type]
    [row] = await posted(database)
    await sender._deliver(row, Backoff(first=0.01, cap=0.01))
    await sender._settle_marks()
    [sent] = server.sent
    assert "secret" not in sent["body"]
    assert sent["body"].startswith("⚠️ Withheld") and sent["body"].endswith("something changed")
    assert sent["m.relates_to"]["event_id"] == "$root"
    assert sent["m.relates_to"]["m.in_reply_to"] == {"event_id": "$1"}
