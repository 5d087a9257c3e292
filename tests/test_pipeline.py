"""The per-event pipeline on a real database, without a homeserver: one transaction per event,
internal errors answered with a reference, replays and unknown rooms doing nothing."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from nio import MegolmEvent, RoomMessageText
from sqlalchemy import text

from bot.pipeline import Pipeline
from commands import Announcement, Context, Reply, command
from commands.replies import RoomKey
from config import Role
from storage import outbox
from storage.db import Database
from tests.support.pipeline import pipeline_for
from tests.support.rooms import rooms_with
from workflow import AccessPolicy

ROOM = "!coordination"
ALICE = "@alice:aegis.test"
BOT = "@aegis:aegis.test"


@command("explode", help="Always fails, to prove the failure path.")
async def explode(ctx: Context) -> Reply:
    await ctx.workflow.audit(ctx.actor, "half-done", "x", ctx.event_id)  # must be rolled back
    raise RuntimeError("boom")


def make_pipeline(db: Database, keys_requested: list[str]) -> Pipeline:
    async def request_keys(event: MegolmEvent) -> None:
        keys_requested.append(event.event_id)

    rooms = {key: f"!{key.value}" for key in RoomKey}
    rooms[RoomKey.COORDINATION] = ROOM
    access = AccessPolicy({ALICE: frozenset({Role.LIAISON})}, frozenset(), "aegis.test")
    state = rooms_with(rooms.values(), ALICE, BOT)
    return pipeline_for(db, __name__, access, rooms, state, BOT, request_keys)


def message(event_id: str, body: str, **extra: Any) -> RoomMessageText:
    content = {"msgtype": "m.text", "body": body, **extra}
    return RoomMessageText.from_dict(
        {
            "event_id": event_id,
            "sender": ALICE,
            "origin_server_ts": 1,
            "type": "m.room.message",
            "content": content,
        }
    )


async def sent(db: Database) -> list[dict[str, Any]]:
    async with db.transaction() as s:
        return [m.content for m in await outbox.pending(s)]


@pytest.fixture
def keys_requested() -> list[str]:
    return []


@pytest.fixture
def pipeline(database: Database, keys_requested: list[str]) -> Pipeline:
    return make_pipeline(database, keys_requested)


async def test_a_command_is_answered_once_even_when_replayed(
    pipeline: Pipeline, database: Database
) -> None:
    event = message("$1", "!ping one")
    await pipeline.handle(ROOM, event)
    await pipeline.handle(ROOM, event)
    replies = await sent(database)
    assert len(replies) == 1
    assert replies[0]["body"].startswith("pong one")
    assert replies[0]["m.relates_to"] == {"m.in_reply_to": {"event_id": "$1"}}


async def test_internal_error_answers_a_reference_and_rolls_back(
    pipeline: Pipeline, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        await pipeline.handle(ROOM, message("$2", "!explode"))
    [reply] = await sent(database)
    assert "Internal error, reference" in reply["body"]
    assert "Traceback" not in reply["body"] and "boom" not in reply["body"]
    ref = reply["body"].split("reference ")[1].split(".")[0]
    [record] = [r for r in caplog.records if getattr(r, "ref", None) == ref]
    assert record.exc_info is not None  # the traceback is in the log, under that reference
    async with database.transaction() as s:
        assert (await s.execute(text("SELECT count(*) FROM audit_log"))).scalar() == 0
    await pipeline.handle(ROOM, message("$2", "!explode"))
    assert len(await sent(database)) == 1


async def test_commands_in_unknown_rooms_are_ignored(
    pipeline: Pipeline, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        await pipeline.handle("!elsewhere", message("$3", "!ping"))
    assert await sent(database) == []
    assert any("unknown room" in r.getMessage() for r in caplog.records)


async def test_edits_and_notices_are_not_commands(pipeline: Pipeline, database: Database) -> None:
    edit = message("$4", "* !ping", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$1"}})
    await pipeline.handle(ROOM, edit)
    notice = RoomMessageText.from_dict(
        {
            "event_id": "$5",
            "sender": ALICE,
            "origin_server_ts": 1,
            "type": "m.room.message",
            "content": {"msgtype": "m.notice", "body": "!ping"},
        }
    )
    assert not await pipeline.handle(ROOM, notice)  # asks for nothing: marked with the token
    assert await sent(database) == []


async def test_a_reply_quoting_another_message_still_runs_its_command(
    pipeline: Pipeline, database: Database
) -> None:
    await pipeline.handle(ROOM, message("$6", "> <@bob:aegis.test> earlier text\n\n!ping quoted"))
    [reply] = await sent(database)
    assert reply["body"].startswith("pong quoted")


async def test_undecryptable_event_gets_a_notice_and_a_key_request(
    pipeline: Pipeline, database: Database, keys_requested: list[str]
) -> None:
    event = MegolmEvent.from_dict(
        {
            "event_id": "$7",
            "sender": ALICE,
            "origin_server_ts": 1,
            "type": "m.room.encrypted",
            "content": {
                "algorithm": "m.megolm.v1.aes-sha2",
                "ciphertext": "xx",
                "sender_key": "key",
                "device_id": "DEV",
                "session_id": "sess",
            },
        }
    )
    await pipeline.handle(ROOM, event)
    await pipeline.handle(ROOM, event)
    [reply] = await sent(database)
    assert "could not decrypt" in reply["body"].lower()
    assert keys_requested == ["$7"]


async def test_the_same_notice_for_the_same_room_is_posted_once(
    pipeline: Pipeline, database: Database
) -> None:
    notice = Reply("P-1 approved")
    async with database.transaction() as session:
        await pipeline.enqueue_announcements(
            session,
            "$cause",
            (
                Announcement(ROOM, notice),  # the proposer's room, which is coordination
                Announcement(RoomKey.COORDINATION, notice),
                Announcement(RoomKey.OPERATIONS, notice),
            ),
        )
    async with database.transaction() as s:
        rows = await outbox.pending(s)
    assert [r.room_id for r in rows] == [ROOM, "!operations"]


async def test_reactions_and_edits_point_at_named_messages(
    pipeline: Pipeline, database: Database
) -> None:
    async with database.transaction() as session:
        await pipeline.enqueue_announcements(
            session,
            "$cause",
            (
                Announcement(
                    RoomKey.APPROVALS, Reply("prompt"), ref="prompt:P-1", reactions=("✅", "❌")
                ),
                Announcement(RoomKey.APPROVALS, Reply("decided"), replaces="prompt:P-1"),
            ),
        )
    async with database.transaction() as s:
        prompt, yes, no, edit = await outbox.pending(s)
    assert prompt.event_type == "m.room.message" and yes.event_type == "m.reaction"
    assert yes.content["m.relates_to"] == {
        "rel_type": "m.annotation",
        "event_id": {"$ref": "prompt:P-1"},
        "key": "✅",
    }
    assert no.content["m.relates_to"]["key"] == "❌"
    assert edit.content["m.relates_to"] == {
        "rel_type": "m.replace",
        "event_id": {"$ref": "prompt:P-1"},
    }
    assert edit.content["m.new_content"]["body"] == "decided"


async def test_files_of_announcements_are_uploaded_in_their_room(
    pipeline: Pipeline, database: Database
) -> None:
    from commands.replies import Attachment

    part = Reply("agenda 2/2", attachments=(Attachment("agenda.md", "text/markdown", b"# A"),))
    async with database.transaction() as session:
        await pipeline.enqueue_announcements(
            session, "$cause", (Announcement(RoomKey.OPERATIONS, part),)
        )
    async with database.transaction() as s:
        message, upload = await outbox.pending(s)
    assert message.event_type == "m.room.message" and message.room_id == "!operations"
    assert upload.event_type == "aegis.upload" and upload.room_id == "!operations"
    assert upload.content["filename"] == "agenda.md" and upload.content["in_reply_to"] is None
