"""The working day of `docs/day.md`, replayed against the real homeserver in encrypted rooms.

A family dossier from opening to close: one person assessed (in a thread), a measure for the
other proposed, approved by ✅ and acknowledged by the police, a personal reminder, the
weekly agenda, a refused close and the close once the measure has ended. Every message the
bot posts that day is checked for local human times (no ISO instant, no UTC), and each
answer for the state it reports and the thread it belongs in."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import nio

from commands.formatting import when
from tests.conftest import UserFactory
from tests.support.matrix_user import MatrixUser, content
from tests.support.world import World
from tests.test_measures_e2e import (
    WAIT,
    ask,
    body,
    cast,
    decided,
    from_bot,
    is_edit_of,
    is_order,
    new_body,
    prompt_of,
    propose,
    start_bot,
)

BRUSSELS = ZoneInfo("Europe/Brussels")  # the bot's default `bot.timezone`
ISO_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}|\+00:00|\bUTC\b")


def start_of_day(days: int) -> datetime:
    today = datetime.now(BRUSSELS).date() + timedelta(days=days)
    return datetime(today.year, today.month, today.day, tzinfo=BRUSSELS)


def end_of_day(days: int) -> datetime:
    return start_of_day(days + 1) - timedelta(seconds=1)


def bot_texts(world: World, user: MatrixUser, room: str) -> list[str]:
    """Everything the bot posted in `room` that `user` can read, edits' new text included."""
    texts = []
    for event in user.events(room):
        if event.sender != world.setup.user_id or isinstance(event, nio.MegolmEvent):
            continue
        said = content(event)
        texts.append(str(said.get("body", "")))
        if "m.new_content" in said:
            texts.append(str(said["m.new_content"].get("body", "")))
    return texts


async def test_a_working_day_reads_in_local_time_with_true_states_in_the_right_thread(
    world: World, user_factory: UserFactory
) -> None:
    mira = await cast(world, user_factory, "mira", ["approver"])
    piet = await cast(world, user_factory, "piet", ["police"], rooms=("operations",))
    lien = world.alice
    world.setup.roles[lien.user_id] = ["liaison", "analyst"]
    bot = await start_bot(world, world.setup.write_config())
    room, operations = world.coordination, world.setup.rooms["operations"]
    try:
        # Morning: the dossier, with one person per name.
        command = (
            '!dossier open person "Family of a threatened magistrate" '
            'category=threatened-person basis=threat subjects="Anna Peeters,Bram Peeters"'
        )
        root = await lien.say(room, command)
        opened = body(await lien.reply_to(room, root, timeout=WAIT))
        found = re.search(r"D-\d{4}-\d{4}", opened)
        assert found, opened
        ref = found.group()
        assert f"{ref}/1 Anna Peeters" in opened and f"{ref}/2 Bram Peeters" in opened, opened

        # OCAD's assessment of Anna, typed in the thread under the opening: answered there.
        assessment = await lien.say_in_thread(
            room,
            root,
            f'!threat log {ref} level=3 person=1 source=OCAD review="binnen 14 dagen" '
            "threats received at work",
        )
        answer = await lien.reply_to(room, assessment, timeout=WAIT)
        relation = content(answer)["m.relates_to"]
        assert relation["rel_type"] == "m.thread" and relation["event_id"] == root, relation
        assessed = body(answer)
        assert f"{ref}/1: threat level 3 SERIOUS" in assessed, assessed
        assert f"Review: {when(end_of_day(14), BRUSSELS)}" in assessed, assessed
        assert "end of day" in assessed

        # Patrols for Bram from tomorrow: a date without a time starts at 00:00, ends at the
        # end of its day.
        proposal, measure = await propose(
            lien,
            room,
            f'!measure propose {ref} patrol for=2 start=morgen end="over 14 dagen" '
            "executor=LPZ patrols at varying times",
        )
        period = f"{when(start_of_day(1), BRUSSELS)} → {when(end_of_day(14), BRUSSELS)}"
        prompt = await prompt_of(world, mira, proposal)
        asked = body(prompt)
        assert f"For: {ref}/2 Bram Peeters" in asked and period in asked, asked
        assert content(prompt)["m.mentions"] == {"user_ids": [mira.user_id]}

        # Noon: the decision, and the order to the police, who must act on it.
        await mira.react(world.setup.rooms["approvals"], prompt.event_id, "✅")
        assert "APPROVED" in await decided(world, mira, prompt)
        order = await piet.wait_for(operations, from_bot(world, is_order(measure)), WAIT)
        assert content(order)["m.mentions"] == {"user_ids": [piet.user_id]}

        # Approved, but its start is tomorrow: not active yet, and grouped under Bram.
        shown = await ask(lien, room, f"!dossier show {ref}")
        bram = shown.index(f"\n{ref}/2 Bram Peeters\n")
        assert shown.index(f"\n{ref}/1 Anna Peeters\n") < bram, shown
        starts = f"approved, starts {when(start_of_day(1), BRUSSELS)}"
        assert f"{measure} · patrol · {period} · {starts}" in shown[bram:], shown
        assert "active" not in shown[bram:].split("\nRecent activity\n")[0], shown

        # The police acknowledge; the order says so.
        acked = await ask(piet, operations, f"!measure ack {measure}")
        assert measure in acked, acked
        edit = await piet.wait_for(
            operations, from_bot(world, is_edit_of(order.event_id)), timeout=WAIT
        )
        assert "Acknowledged by" in new_body(edit), new_body(edit)

        # Afternoon: a reminder, posted in this room and mentioning Lien.
        set_reply = await ask(lien, room, "!remind me in 5 seconds call the school about Bram")
        assert "Reminder RM-1 set for you" in set_reply, set_reply
        reminder = await lien.wait_for(
            room,
            from_bot(world, lambda e: "Reminder: call the school about Bram" in body(e)),
            timeout=WAIT,
        )
        assert content(reminder)["m.mentions"] == {"user_ids": [lien.user_id]}
        assert "late" not in body(reminder).lower()

        # The weekly agenda: Monday of last week to Sunday of next week.
        today = start_of_day(0)
        monday = today - timedelta(days=today.weekday() + 7)
        sunday_end = end_of_day((monday.date() - today.date()).days + 20)
        agenda = await ask(lien, room, "!agenda weekly")
        window = f"{when(monday, BRUSSELS)} to {when(sunday_end, BRUSSELS)}"
        assert window in agenda, agenda

        # Evening: the close is refused while the patrol is approved, naming how to end it.
        refused = await ask(lien, room, f"!dossier close {ref} family moved abroad")
        assert "cannot be closed" in refused, refused
        assert f"{measure} patrol ({starts})" in refused, refused
        assert f"!measure end {measure}" in refused, refused

        ending, _ = await propose(lien, room, f"!measure end {measure} family moved abroad")
        end_prompt = await prompt_of(world, mira, ending)
        await mira.react(world.setup.rooms["approvals"], end_prompt.event_id, "✅")
        assert "APPROVED" in await decided(world, mira, end_prompt)
        closed = await ask(lien, room, f"!dossier close {ref} family moved abroad")
        assert "closed" in closed.lower() and "cannot" not in closed, closed

        # All day long: no ISO or UTC instant in anything the bot said, in any room.
        for reader, where in (
            (lien, room),
            (mira, world.setup.rooms["approvals"]),
            (piet, operations),
        ):
            for text in bot_texts(world, reader, where):
                assert not ISO_INSTANT.search(text), text
    finally:
        await bot.stop()
