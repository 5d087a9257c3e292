"""Answers where people are, against the real homeserver in encrypted rooms: in the thread
a command was typed in, once for an edit that fixes a typo, in a direct chat (and a polite
goodbye to a user without a role), and scoped to the dossier in a dossier's own room."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import nio
import pytest
from sqlalchemy import text

from storage.db import Database
from tests.support.bot_runner import InProcessBot
from tests.support.matrix_user import MatrixUser, content, in_reply_to, is_notice
from tests.support.world import World

WAIT = 60.0
REF_RE = re.compile(r"D-\d{4}-\d{4,}")


@pytest.fixture
async def running(world: World) -> AsyncIterator[InProcessBot]:
    world.setup.roles[world.alice.user_id] = ["liaison", "analyst"]
    async with world.running_bot() as bot:
        yield bot


def answers(command: str, wanted: Callable[[str], bool] = lambda _: True) -> Any:
    def check(event: nio.Event) -> bool:
        return is_notice(event) and in_reply_to(event) == command and wanted(body(event))

    return check


def body(event: nio.Event) -> str:
    return str(content(event).get("body", ""))


async def ask(user: MatrixUser, room: str, command: str) -> str:
    event_id = await user.say(room, command)
    return body(await user.reply_to(room, event_id, timeout=WAIT))


async def open_dossier(world: World, title: str) -> str:
    found = REF_RE.search(
        await ask(world.alice, world.coordination, f'!dossier open person "{title}"')
    )
    assert found
    return found.group(0)


async def audited(world: World, action: str) -> list[str]:
    db = Database(world.setup.database_url)
    try:
        async with db.transaction() as session:
            query = text("SELECT actor FROM audit_log WHERE action = :action")
            return [row[0] for row in await session.execute(query, {"action": action})]
    finally:
        await db.close()


async def test_a_command_in_a_thread_is_answered_in_that_thread(
    world: World, running: InProcessBot
) -> None:
    room = world.coordination
    root = await world.alice.say(room, "Planning the gala")
    command = await world.alice.say_in_thread(room, root, "!ping in the thread")
    reply = await world.alice.wait_for(room, answers(command), timeout=WAIT)
    assert reply.decrypted
    assert body(reply).startswith("pong in the thread")
    relation = content(reply)["m.relates_to"]
    assert relation["rel_type"] == "m.thread" and relation["event_id"] == root
    assert relation["is_falling_back"] is True


async def test_an_edit_fixing_a_typo_runs_once_and_later_edits_are_already_done(
    world: World, running: InProcessBot
) -> None:
    room = world.coordination
    command = await world.alice.say(room, '!dossier opn person "Typo gala"')
    typo = await world.alice.reply_to(room, command, timeout=WAIT)
    assert body(typo).startswith("❌ Unknown command")

    await world.alice.edit(room, command, '!dossier open person "Typo gala"')
    opened = await world.alice.wait_for(
        room, answers(command, lambda b: "Opened" in b), timeout=WAIT
    )
    ref = REF_RE.search(body(opened))
    assert ref

    await world.alice.edit(room, command, '!dossier open person "Typo gala, again"')
    await world.alice.wait_for(
        room, answers(command, lambda b: "Already done; send a new command" in b), timeout=WAIT
    )
    listing = await ask(world.alice, room, "!dossier list")
    assert "(1 in all)" in listing, listing
    assert "Typo gala, again" not in listing


async def test_a_direct_chat_answers_a_user_with_a_role(
    world: World, running: InProcessBot
) -> None:
    await open_dossier(world, "Direct gala")
    chat = await world.alice.open_direct_chat(world.setup.user_id)
    await world.alice.wait_for_member(chat, world.setup.user_id, timeout=WAIT)

    assert "!approvals" in await ask(world.alice, chat, "!help")
    mine = await ask(world.alice, chat, "!dossier list mine")
    assert "Direct gala" in mine and "(1 in all)" in mine, mine
    assert "No proposal" in await ask(world.alice, chat, "!approvals")
    assert "No measures match" in await ask(world.alice, chat, "!measure list mine")
    elsewhere = await ask(world.alice, chat, '!dossier open person "Not here"')
    assert elsewhere.startswith("⚠️ Use !dossier open in the coordination room"), elsewhere
    assert world.alice.user_id in await audited(world, "refused:dossier open")


async def test_a_user_without_a_role_is_told_where_aegis_works_and_left(
    world: World, running: InProcessBot
) -> None:
    stranger = world.stranger
    chat = await stranger.open_direct_chat(world.setup.user_id)
    line = await stranger.wait_for(
        chat, lambda e: is_notice(e) and e.sender == world.setup.user_id, timeout=WAIT
    )
    assert "Aegis works in the coordination room" in body(line)
    assert world.coordination in body(line)

    def left() -> bool:
        events = stranger.events(chat)
        return any(
            isinstance(e, nio.RoomMemberEvent)
            and e.state_key == world.setup.user_id
            and e.membership == "leave"
            for e in events
        )

    await stranger._wait(left, WAIT, "the bot to leave the direct chat")
    assert stranger.user_id in await audited(world, "refused:invite")
    notices = [e for e in stranger.events(chat) if is_notice(e)]
    assert len(notices) == 1


async def test_a_dossier_room_scopes_listings_and_hears_level_changes(
    world: World, running: InProcessBot
) -> None:
    room = world.coordination
    ours = await open_dossier(world, "Room gala")
    other = await open_dossier(world, "Other gala")
    for ref in (ours, other):
        proposed = await ask(world.alice, room, f"!measure propose {ref} patrol route check")
        assert "P-" in proposed, proposed
    await ask(world.admin, room, f"!dossier room {ours} invite={world.alice.user_id}")

    def invited() -> str | None:
        rooms = world.alice.client.invited_rooms.items()
        return next((room_id for room_id, r in rooms if r.name == ours), None)

    await world.alice._wait(lambda: invited() is not None, WAIT, "the invite to the dossier room")
    dossier_room = invited()
    assert dossier_room is not None
    await world.alice.join(dossier_room)
    await world.alice.wait_for(
        dossier_room, lambda e: is_notice(e) and e.sender == world.setup.user_id, timeout=WAIT
    )

    listing = await ask(world.alice, dossier_room, "!measure list status=all")
    assert ours in listing and other not in listing, listing
    everywhere = await ask(world.alice, room, "!measure list status=all")
    assert ours in everywhere and other in everywhere, everywhere

    await ask(world.alice, room, f"!threat log {ours} level=1 source=OCAD calm so far")
    changed = await ask(world.alice, dossier_room, "!threat log level=2 source=OCAD crowd expected")
    # The answer and the room's announcement of the change are one message.
    assert f"{ours}: threat level" in changed
    assert f"Threat level of {ours} changed" in changed, changed
    history = await ask(world.alice, dossier_room, "!threat list")
    assert "crowd expected" in history and "calm so far" in history
