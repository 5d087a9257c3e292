"""The runtime against a real Synapse: encryption, authorization, first start, audit.

Each test gets a fresh bot account, fresh rooms and a fresh database (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import hashlib
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.anchor import CONTENT_KEY
from storage import audit
from storage.db import Database
from tests.conftest import UserFactory
from tests.support.bot_runner import InProcessBot, run_aegis
from tests.support.databases import insider
from tests.support.matrix_user import MatrixUser, content, in_reply_to
from tests.support.world import World


@pytest.fixture
async def running(world: World) -> AsyncIterator[InProcessBot]:
    async with world.running_bot() as bot:
        yield bot


async def audit_rows(database_url: str) -> list[dict[str, str]]:
    db = Database(database_url)
    try:
        async with db.transaction() as s:
            rows = await s.execute(text("SELECT actor, action, target FROM audit_log ORDER BY seq"))
            return [dict(r._mapping) for r in rows]
    finally:
        await db.close()


async def test_help_in_encrypted_room_is_decrypted_and_answered_encrypted(
    world: World, running: InProcessBot
) -> None:
    command = await world.alice.say(world.coordination, "!help")
    reply = await world.alice.reply_to(world.coordination, command)
    assert reply.decrypted  # it arrived as m.room.encrypted and our client decrypted it
    body = content(reply)
    assert body["msgtype"] == "m.notice"
    assert "!ping" in body["body"] and "!help" in body["body"]
    assert "<" in body["formatted_body"]


async def test_ping_reports_version_and_uptime(world: World, running: InProcessBot) -> None:
    command = await world.alice.say(world.coordination, "!ping hello <b>there</b>")
    body = content(await world.alice.reply_to(world.coordination, command))
    assert "pong" in body["body"].lower() and "hello <b>there</b>" in body["body"]
    assert "&lt;b&gt;there&lt;/b&gt;" in body["formatted_body"]  # user text is escaped in HTML


async def test_user_without_role_is_refused_and_audited(
    world: World, running: InProcessBot
) -> None:
    await world.seat(world.stranger, "coordination")
    command = await world.stranger.say(world.coordination, "!ping")
    body = content(await world.stranger.reply_to(world.coordination, command))
    assert "role" in body["body"].lower()
    rows = await audit_rows(world.setup.database_url)
    assert any(
        r["actor"] == world.stranger.user_id and r["action"].startswith("refused") for r in rows
    )


async def test_malformed_and_unknown_commands_get_usage_and_change_nothing(
    world: World, running: InProcessBot
) -> None:
    unknown = await world.alice.say(world.coordination, "!pnig")
    body = content(await world.alice.reply_to(world.coordination, unknown))["body"]
    assert "!ping" in body  # did you mean
    oversized = await world.alice.say(world.coordination, "!ping " + "x" * 5000)
    body = content(await world.alice.reply_to(world.coordination, oversized))["body"]
    assert "4096" in body
    assert "Traceback" not in body
    assert await audit_rows(world.setup.database_url) == []


async def test_first_start_executes_no_history(world: World, tmp_path: Path) -> None:
    old = [await world.alice.say(world.coordination, f"!ping old-{n}") for n in range(3)]
    bot = InProcessBot(world.setup.write_config())
    await bot.start()
    try:
        await bot.ready()
        await world.admin.wait_for_member(world.coordination, world.setup.user_id)
        new = await world.alice.say(world.coordination, "!ping new")
        await world.alice.reply_to(world.coordination, new)
        answered = {
            in_reply_to(e) for e in world.alice.replies(world.coordination, world.setup.user_id)
        }
        assert answered.isdisjoint(old)
    finally:
        await bot.stop()


async def test_history_of_an_already_joined_room_is_not_executed(world: World) -> None:
    """The bot account was already in the room (a previous install) when this one first starts."""
    first = InProcessBot(world.setup.write_config())
    await first.start()
    await first.ready()
    await world.admin.wait_for_member(world.coordination, world.setup.user_id)
    await first.stop()
    old = await world.alice.say(world.coordination, "!ping before-the-new-install")
    fresh_db = world.setup.workdir / "fresh.db"
    world.setup.database_url = f"sqlite+aiosqlite:///{fresh_db}"
    second = InProcessBot(world.setup.write_config())
    await second.start()
    try:
        await second.ready()
        new = await world.alice.say(world.coordination, "!ping after")
        await world.alice.reply_to(world.coordination, new)
        answered = {
            in_reply_to(e) for e in world.alice.replies(world.coordination, world.setup.user_id)
        }
        assert old not in answered
    finally:
        await second.stop()


async def _joined(user: MatrixUser, room_id: str, member: str) -> bool:
    room = user.client.rooms.get(room_id)
    return room is not None and member in room.users and not room.users[member].invited


async def test_invites_only_from_allowed_servers_users_with_roles_for_configured_rooms(
    world: World, user_factory: UserFactory
) -> None:
    world.setup.allowed_servers = ["partner.example"]  # the test server is not on the list
    bot = InProcessBot(world.setup.write_config())
    await bot.start()
    try:
        await bot.ready()
        await asyncio.sleep(2)  # a joining bot would have joined by now; nothing to poll for
        assert not await _joined(world.admin, world.coordination, world.setup.user_id)
    finally:
        await bot.stop()
    rows = await audit_rows(world.setup.database_url)
    refused = [r for r in rows if r["action"] == "refused:invite"]
    assert {r["target"] for r in refused} == set(world.setup.rooms.values())
    assert {r["actor"] for r in refused} == {world.admin.user_id}


async def test_invites_to_unconfigured_rooms_or_from_roleless_users_are_declined(
    world: World, running: InProcessBot
) -> None:
    other = await world.admin.create_room("not configured", invite=[world.setup.user_id])
    by_stranger = await world.stranger.create_room("stranger's", invite=[world.setup.user_id])
    probe = await world.alice.say(world.coordination, "!ping probe")
    await world.alice.reply_to(world.coordination, probe)
    await asyncio.sleep(2)
    assert not await _joined(world.admin, other, world.setup.user_id)
    assert not await _joined(world.stranger, by_stranger, world.setup.user_id)
    rows = await audit_rows(world.setup.database_url)
    targets = {r["target"] for r in rows if r["action"] == "refused:invite"}
    assert {other, by_stranger} <= targets


async def test_checkpoints_land_in_matrix_and_verify_reads_them_back(world: World) -> None:
    """A config without audit.key: the bot generates its 0600 key file, anchors the chain's
    head in coordination at shutdown, and `aegis audit verify` reads that checkpoint back
    (decrypting it with the bot's store). A truncation of the last row is then reported with
    the missing range, a rewrite rechained without the key with its entry; both exit 1."""
    # Seated before the bot starts: his arrival is history, so the trail holds only the
    # three refusals (seated later, the membership guard would audit him too).
    await world.seat(world.stranger, "coordination")
    async with world.running_bot():
        for _ in range(3):
            command = await world.stranger.say(world.coordination, "!ping")
            await world.stranger.reply_to(world.coordination, command)
    assert stat.S_IMODE((world.setup.workdir / "audit.key").stat().st_mode) == 0o600
    posted = await world.admin.wait_for(world.coordination, lambda e: CONTENT_KEY in content(e))
    assert content(posted)["body"].startswith("Audit checkpoint: entry 3, hash ")
    config = str(world.setup.config_path)
    code, out, err = await run_aegis("audit", "verify", "-c", config)
    assert code == 0, err
    assert "3 entries verified, against 1 checkpoint" in out

    db = Database(world.setup.database_url)
    try:
        async with insider(db) as s:
            await s.execute(text("DELETE FROM audit_salts WHERE seq = 3"))
            await s.execute(text("DELETE FROM audit_log WHERE seq = 3"))
        code, out, err = await run_aegis("audit", "verify", "-c", config)
        assert code == 1, out
        assert "entries 3-3 missing" in err

        async with insider(db) as s:
            row = (await s.execute(text("SELECT * FROM audit_log WHERE seq = 2"))).one()
            at = row.at if isinstance(row.at, datetime) else datetime.fromisoformat(row.at)
            fields = {k: getattr(row, k) for k in ("actor", "role", "action", "event_id")}
            payload = audit._payload(
                2,
                at if at.tzinfo else at.replace(tzinfo=UTC),
                {**fields, "target": "forged", "detail_sha256": row.detail_digest},
                row.prev_hash,
            )
            await s.execute(
                text("UPDATE audit_log SET target = 'forged', hash = :h WHERE seq = 2"),
                {"h": hashlib.sha256(payload).hexdigest()},
            )
    finally:
        await db.close()
    code, out, err = await run_aegis("audit", "verify", "-c", config)
    assert code == 1, out
    assert "BROKEN at entry 2" in err


def test_notice_replies_relate_to_the_command() -> None:
    """Shape of a reply as the runtime builds it (no homeserver needed)."""
    from bot.render import notice
    from commands.replies import Reply

    body = notice(Reply("done", fields=(("who", "<script>"),)), in_reply_to="$cmd")
    assert body["msgtype"] == "m.notice"
    assert body["m.relates_to"] == {"m.in_reply_to": {"event_id": "$cmd"}}
    assert "<script>" not in body["formatted_body"] and "&lt;script&gt;" in body["formatted_body"]


async def test_undecryptable_message_gets_a_visible_answer(
    world: World, running: InProcessBot
) -> None:
    room = world.coordination
    await world.alice.say(room, "hello")  # learn the bot's device
    bot_device = world.alice.client.device_store[world.setup.user_id][world.setup.device_id]
    world.alice.client.blacklist_device(bot_device)  # the bot will not get the next room key
    world.alice.client.invalidate_outbound_session(room)
    command = await world.alice.say(room, "!ping secret")
    body = content(await world.alice.reply_to(room, command))["body"]
    assert "could not decrypt" in body.lower() and "resend" in body.lower()
