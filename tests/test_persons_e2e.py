"""Persons in a dossier against the real homeserver: a family dossier with two persons, a
threat assessment of one, a measure for the other approved by reaction, and `!dossier show`
grouping levels and measures per person."""

from __future__ import annotations

import re

from tests.conftest import UserFactory
from tests.support.matrix_user import content
from tests.support.world import World
from tests.test_measures_e2e import ask, cast, decided, prompt_of, propose, start_bot


async def test_family_dossier_levels_and_measures_per_person(
    world: World, user_factory: UserFactory
) -> None:
    minister = await cast(world, user_factory, "minister", ["approver"])
    world.setup.roles[world.alice.user_id] = ["liaison", "analyst"]
    bot = await start_bot(world, world.setup.write_config())
    try:
        room, alice = world.coordination, world.alice
        opened = await ask(
            alice,
            room,
            '!dossier open person "Family Z" category=threatened-person subjects="Anna Z, Bert Z"',
        )
        match = re.search(r"D-\d{4}-\d{4}", opened)
        assert match, opened
        ref = match.group()
        assert f"Persons: {ref}/1 Anna Z, {ref}/2 Bert Z" in opened, opened

        assessed = await ask(alice, room, f"!threat log {ref} person=1 level=3 source=OCAD video")
        assert f"{ref}/1: threat level 3 SERIOUS" in assessed, assessed
        proposal, measure = await propose(
            alice, room, f"!measure propose {ref} close-protection for={ref}/2 school run"
        )
        prompt = await prompt_of(world, minister, proposal)
        assert f"For: {ref}/2 Bert Z" in str(content(prompt)["body"])
        await minister.react(world.setup.rooms["approvals"], prompt.event_id, "✅")
        assert "APPROVED" in await decided(world, minister, prompt)

        event_id = await alice.say(room, f"!dossier show {ref}")
        reply = content(await alice.reply_to(room, event_id, timeout=60))
        shown = str(reply["body"])
        whole, anna, bert = (
            shown.index(f"\n{ref} as a whole\n"),
            shown.index(f"\n{ref}/1 Anna Z\n"),
            shown.index(f"\n{ref}/2 Bert Z\n"),
        )
        assert whole < anna < bert < shown.index("\nRecent activity\n"), shown
        assert "3 SERIOUS" in shown[anna:bert] and "• level: no assessment" in shown[bert:]
        assert f"• {measure} · close-protection · — → — · active" in shown[bert:], shown
        assert "measures: none in force, scheduled or pending" in shown[whole:anna]
        assert "measures: none in force, scheduled or pending" in shown[anna:bert]
        assert f"<h4>{ref}/2 Bert Z</h4>" in str(reply["formatted_body"])
    finally:
        await bot.stop()
