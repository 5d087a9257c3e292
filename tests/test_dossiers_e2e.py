"""Issue 3's acceptance against the real homeserver: the full dossier scenario, concurrent
opens from two users, and roles granted in chat."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from storage.db import Database
from tests.support.bot_runner import InProcessBot
from tests.support.matrix_user import MatrixUser, content, download, in_reply_to
from tests.support.world import World


@pytest.fixture
async def bot(world: World) -> AsyncIterator[InProcessBot]:
    async with world.running_bot() as running:
        yield running


async def ask(user: MatrixUser, room: str, command: str) -> str:
    """The plain body of the bot's reply to `command`."""
    event_id = await user.say(room, command)
    return str(content(await user.reply_to(room, event_id, timeout=60))["body"])


async def exported(user: MatrixUser, room: str, command: str) -> bytes:
    event_id = await user.say(room, command)
    file_event = await user.wait_for(
        room,
        lambda e: content(e).get("msgtype") == "m.file" and in_reply_to(e) == event_id,
        timeout=60,
    )
    return await download(user, file_event)


async def test_full_dossier_scenario(world: World) -> None:
    world.setup.roles[world.alice.user_id] = ["liaison", "analyst"]
    bot = InProcessBot(world.setup.write_config())
    await bot.start()
    try:
        await bot.ready()
        await world.admin.wait_for_member(world.coordination, world.setup.user_id)
        room, alice = world.coordination, world.alice

        opened = await ask(
            alice,
            room,
            '!dossier open person "Visit of the Minister of Z" category=minister '
            'start="volgende maandag 9u" end="volgende maandag 18u" basis=both ref=BZ/77',
        )
        ref = re.search(r"D-\d{4}-\d{4}", opened)
        assert ref, opened
        dossier = ref.group()
        assert "Opened" in opened and "person/minister" in opened and "09:00" in opened

        medium = await ask(alice, room, f"!threat log {dossier} level=2 source=OCAD first analysis")
        assert "2 MEDIUM / GEMIDDELD / MOYEN" in medium
        raised = await ask(
            alice, room, f"!threat log {dossier} level=4 source=police credible plot"
        )
        assert "4 VERY SERIOUS / ZEER ERNSTIG / TRÈS GRAVE" in raised
        # The announcement to the room the command was typed in is part of the answer: one
        # message, not two.
        assert (
            f"THREAT LEVEL RAISED to 4 VERY SERIOUS / ZEER ERNSTIG / TRÈS GRAVE — {dossier}"
            in raised
        )
        told = [
            e
            for e in alice.replies(room, world.setup.user_id)
            if "THREAT LEVEL RAISED" in content(e).get("body", "")
        ]
        assert len(told) == 1 and in_reply_to(told[0]) is not None

        assert "Note added" in await ask(
            alice, room, f"!dossier note {dossier} route agreed with police"
        )
        shown = await ask(alice, room, f"!dossier show {dossier}")
        assert "4 VERY SERIOUS" in shown and "BZ/77" in shown and "route agreed" in shown
        listed = await ask(alice, room, "!dossier list level>=4")
        assert dossier in listed
        found = await ask(alice, room, "!dossier find minister of z")
        assert dossier in found
        timeline = await ask(alice, room, f"!dossier timeline {dossier}")
        for kind in ("opened", "assessment", "note"):
            assert kind in timeline

        markdown = (await exported(alice, room, f"!export {dossier}")).decode()
        assert markdown.startswith(f"# {dossier} — Visit of the Minister of Z")
        assert "credible plot" in markdown and "## Audit trail" in markdown
        record = json.loads(await exported(alice, room, f"!export {dossier} format=json"))
        assert record["dossier"]["id"] == dossier
        assert [a["level"] for a in record["assessments"]] == [4, 2]
        assert any(a["action"] == "threat.log" for a in record["audit"])
        # Each reading command so far left one entry, from its own Matrix event, naming
        # exactly what it displayed (the JSON export is recorded after its file is made).
        reads = [a for a in record["audit"] if a["action"] == "dossier.read"]
        assert [(a["detail"]["command"], a["detail"]["dossiers"]) for a in reads] == [
            ("dossier show", [dossier]),
            ("dossier list", [dossier]),
            ("dossier find", [dossier]),
            ("dossier timeline", [dossier]),
            ("export", [dossier]),
        ]
        assert all(a["actor"] == alice.user_id for a in reads)
        assert len({a["event_id"] for a in reads}) == 5
        assert all(a["event_id"].startswith("$") for a in reads)

        assert "Closed" in await ask(alice, room, f"!dossier close {dossier} visit over")
        refused = await ask(alice, room, f"!dossier note {dossier} too late")
        assert "closed" in refused
        assert "Reopened" in await ask(alice, room, f"!dossier reopen {dossier} follow-up visit")
        assert "Note added" in await ask(alice, room, f"!dossier note {dossier} now it works")
    finally:
        await bot.stop()


async def test_find_ignores_accents_and_ids_and_groups_read_as_people_type_them(
    world: World,
) -> None:
    world.setup.roles[world.alice.user_id] = ["liaison"]
    bot = InProcessBot(world.setup.write_config())
    await bot.start()
    try:
        await bot.ready()
        await world.admin.wait_for_member(world.coordination, world.setup.user_id)
        room, alice = world.coordination, world.alice
        opened = await ask(
            alice, room, '!dossier open person "Family visit" subjects="Israël Cohen, Léa Cohen"'
        )
        ref = re.search(r"D-(\d{4})-(\d{4})", opened)
        assert ref, opened
        event_id = await alice.say(room, "!dossier find ISRAEL")
        found = content(await alice.reply_to(room, event_id, timeout=60))
        assert (
            f"{ref.group()} · Family visit · open · matched: person Israël Cohen" in (found["body"])
        )
        assert "Israël Cohen" in found["formatted_body"]
        short = f"d-{ref.group(1)}-{int(ref.group(2))}"
        assert (await ask(alice, room, f"!dossier show {short}")).startswith(
            f"{ref.group()} — Family visit"
        )
        assert "try !dossier find Israel" in await ask(alice, room, "!dossier show Israel")
        event_id = await alice.say(room, "!dossier")
        group = content(await alice.reply_to(room, event_id, timeout=60))
        assert (
            "<h4>Commands you may use</h4><ul><li><code>!dossier open" in (group["formatted_body"])
        )
    finally:
        await bot.stop()


async def test_fifty_concurrent_opens_from_two_users_get_gapless_ids(
    world: World, bot: InProcessBot
) -> None:
    room = world.coordination

    async def open_many(user: MatrixUser, label: str) -> list[str]:
        return [await user.say(room, f'!dossier open event "{label} {n}"') for n in range(25)]

    sent = await asyncio.gather(open_many(world.admin, "admin"), open_many(world.alice, "alice"))
    replies = []
    for user, events in zip((world.admin, world.alice), sent, strict=True):
        for event_id in events:
            body = content(await user.reply_to(room, event_id, timeout=120))["body"]
            replies.append(re.search(r"D-(\d{4})-(\d{4})", body))
    assert all(replies)
    years = {m.group(1) for m in replies if m}
    numbers = sorted(int(m.group(2)) for m in replies if m)
    assert len(years) == 1 and numbers == list(range(1, 51))


async def test_role_granted_in_chat_applies_at_once_and_is_audited(
    world: World, bot: InProcessBot
) -> None:
    room, alice = world.coordination, world.alice
    dossier = re.search(r"D-\d{4}-\d{4}", await ask(alice, room, '!dossier open event "Forum"'))
    assert dossier
    refused = await ask(alice, room, f"!threat log {dossier.group()} level=3 source=OCAD x")
    assert "analyst" in refused
    granted = await ask(world.admin, room, f"!role grant {alice.user_id} analyst")
    assert "now holds analyst" in granted
    logged = await ask(alice, room, f"!threat log {dossier.group()} level=3 source=OCAD x")
    assert "3 SERIOUS / ERNSTIG / GRAVE" in logged
    db = Database(world.setup.database_url)
    try:
        async with db.transaction() as s:
            rows = (await s.execute(text("SELECT actor, action FROM audit_log ORDER BY seq"))).all()
    finally:
        await db.close()
    actions = [tuple(r) for r in rows]
    assert (alice.user_id, "refused:threat log") in actions
    assert (world.admin.user_id, "role.grant") in actions
    assert (
        actions.index((alice.user_id, "refused:threat log"))
        < actions.index((world.admin.user_id, "role.grant"))
        < actions.index((alice.user_id, "threat.log"))
    )
