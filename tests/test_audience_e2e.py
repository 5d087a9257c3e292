"""Need to know against the real homeserver (issue 11, acceptance 1): the role, not the room,
decides who reads personal data. An answer is withheld while a member without a role sits
in the room and given in full once he left; automated posts are cut to IDs and counts with
a single alert in coordination; an unencrypted room gets IDs only and /readyz says so."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import nio
import pytest
from sqlalchemy import text

from storage.db import Database
from tests.conftest import UserFactory
from tests.support.bot_runner import InProcessBot
from tests.support.homeserver import Homeserver
from tests.support.matrix_user import MatrixUser, content
from tests.support.world import World, build_world

WAIT = 60.0
WITHHELD = "Withheld: not everyone in this room may read this"
TITLE = "Visit of the Minister of Z"


@pytest.fixture
async def bot(world: World) -> AsyncIterator[InProcessBot]:
    async with world.running_bot() as running:
        yield running


async def ask(user: MatrixUser, room: str, command: str) -> str:
    event_id = await user.say(room, command)
    return str(content(await user.reply_to(room, event_id, timeout=WAIT))["body"])


async def open_dossier(world: World) -> str:
    opened = await ask(world.alice, world.coordination, f'!dossier open person "{TITLE}"')
    found = re.search(r"D-\d{4}-\d{4}", opened)
    assert found, opened
    return found.group()


async def audited(database_url: str, action: str) -> list[dict[str, Any]]:
    db = Database(database_url)
    try:
        async with db.snapshot() as s:
            rows = await s.execute(
                text("SELECT actor, target, detail FROM audit_log WHERE action = :a ORDER BY seq"),
                {"a": action},
            )
            return [dict(r._mapping) for r in rows]
    finally:
        await db.close()


async def seen(user: MatrixUser, room: str, member: MatrixUser, membership: str) -> None:
    """Waits until `user`'s client has the membership change: a message sent while its
    sync brings one is encrypted for a member list that changes under it."""
    await user.wait_for(
        room,
        lambda e: (
            isinstance(e, nio.RoomMemberEvent)
            and e.state_key == member.user_id
            and e.membership == membership
        ),
        timeout=WAIT,
    )


def bodies(world: World, user: MatrixUser, room: str) -> list[str]:
    return [
        str(content(e).get("body", ""))
        for e in user.events(room)
        if e.sender == world.setup.user_id
    ]


async def test_a_dossier_is_withheld_while_a_member_without_a_role_is_in_the_room(
    world: World, bot: InProcessBot
) -> None:
    dossier = await open_dossier(world)
    await world.seat(world.stranger, "coordination")
    await seen(world.alice, world.coordination, world.stranger, "join")
    withheld = await ask(world.alice, world.coordination, f"!dossier show {dossier}")
    assert WITHHELD in withheld
    assert f"Not cleared: {world.stranger.user_id}" in withheld
    assert TITLE not in withheld
    [entry] = await audited(world.setup.database_url, "audience.withheld")
    assert (entry["actor"], entry["target"]) == (world.alice.user_id, world.coordination)
    assert world.stranger.user_id in entry["detail"]
    # Nothing was displayed, so nothing was read.
    assert await audited(world.setup.database_url, "dossier.read") == []

    await world.stranger.client.room_leave(world.coordination)
    await seen(world.alice, world.coordination, world.stranger, "leave")
    shown = await ask(world.alice, world.coordination, f"!dossier show {dossier}")
    assert WITHHELD not in shown and TITLE in shown
    [read] = await audited(world.setup.database_url, "dossier.read")
    assert (read["actor"], read["target"]) == (world.alice.user_id, dossier)


async def test_an_invited_member_counts_too(world: World, bot: InProcessBot) -> None:
    dossier = await open_dossier(world)
    await world.admin.invite(world.coordination, world.stranger.user_id)
    await seen(world.alice, world.coordination, world.stranger, "invite")
    withheld = await ask(world.alice, world.coordination, f"!dossier timeline {dossier}")
    assert WITHHELD in withheld and world.stranger.user_id in withheld


async def test_prompts_for_an_uncleared_room_are_cut_to_ids_and_coordination_alerted_once(
    world: World, bot: InProcessBot
) -> None:
    dossier = await open_dossier(world)
    await world.seat(world.stranger, "approvals")
    approvals = world.setup.rooms["approvals"]
    await seen(world.alice, approvals, world.stranger, "join")
    for n in (1, 2):
        proposed = await ask(
            world.alice, world.coordination, f"!measure propose {dossier} patrol round {n}"
        )
        ref = re.search(r"Proposed (P-\d+)", proposed)
        assert ref, proposed
        wanted = f"Approval needed: {ref.group(1)}"
        prompt = await world.alice.wait_for(
            approvals,
            lambda e, wanted=wanted: (
                e.sender == world.setup.user_id and wanted in content(e).get("body", "")
            ),
            timeout=WAIT,
        )
        body = str(content(prompt)["body"])
        assert dossier in body and TITLE not in body and f"round {n}" not in body
        assert "Details withheld" in body
    # Each alert is sent before the prompt that caused it, so both prompts being in means
    # every alert is in too.
    alerts = [b for b in bodies(world, world.alice, world.coordination) if "Audience check" in b]
    assert len(alerts) == 1, alerts
    assert approvals in alerts[0] and f"Not cleared: {world.stranger.user_id}" in alerts[0]
    assert len(await audited(world.setup.database_url, "audience.cut")) == 2


async def test_an_unencrypted_room_gets_ids_only_and_readyz_names_it(
    homeserver: Homeserver, user_factory: UserFactory, database_url: str, tmp_path: Path
) -> None:
    world = await build_world(homeserver, user_factory, database_url, tmp_path, encrypted=False)
    async with world.running_bot() as bot:
        warning = await world.alice.wait_for(
            world.coordination,
            lambda e: "This room is not end-to-end encrypted" in content(e).get("body", ""),
            timeout=WAIT,
        )
        assert warning.sender == world.setup.user_id
        opened = await ask(world.alice, world.coordination, f'!dossier open person "{TITLE}"')
        assert WITHHELD in opened and "not end-to-end encrypted" in opened
        assert TITLE not in opened
        assert (await ask(world.alice, world.coordination, "!ping")).startswith("pong")

        assert bot.app.web is not None
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{bot.app.web.port}/readyz") as answer,
        ):
            assert answer.status == 503
            body = await answer.json()
        assert sorted(body["unencrypted_rooms"]) == sorted(world.setup.rooms.values())
        assert "not end-to-end encrypted" in body["reason"]
