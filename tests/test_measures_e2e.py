"""Issue 4's acceptance against the real homeserver: protective measures, the minister's
approval by reaction, the police's acknowledgement, outages, time-driven steps and races.

Every decision is also checked in the audit trail. A "barrier" is a command sent in the
same room after a reaction: the bot handles a room's events in order and sends its outbox
in order, so once the barrier's answer is in, anything the reaction caused is in too."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import nio
import pytest
from sqlalchemy import text

from bot.scheduler import Scheduler
from storage.db import Database
from tests.conftest import UserFactory
from tests.support.bot_runner import BotProcess, FakeClock, InProcessBot
from tests.support.chat import BRUSSELS
from tests.support.matrix_user import MatrixUser, content
from tests.support.world import World

WAIT = 60.0
ISO_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


# ---------------------------------------------------------------------------- the cast


async def cast(
    world: World,
    make_user: UserFactory,
    name: str,
    roles: list[str],
    rooms: tuple[str, ...] = ("coordination", "approvals", "operations"),
) -> MatrixUser:
    """A user with `roles` (in the config written afterwards), joined to `rooms`."""
    user = await make_user(name)
    if roles:
        world.setup.roles[user.user_id] = roles
    for key in rooms:
        room_id = world.setup.rooms[key]
        await world.admin.invite(room_id, user.user_id)
        await user.join(room_id)
    return user


async def start_bot(world: World, config: Path, clock: FakeClock | None = None) -> InProcessBot:
    bot = InProcessBot(config, clock)
    await bot.start()
    await bot.ready(timeout=WAIT)
    for key in ("coordination", "approvals", "operations"):
        await world.admin.wait_for_member(world.setup.rooms[key], world.setup.user_id)
    return bot


async def scheduler_of(bot: InProcessBot) -> Scheduler:
    for _ in range(200):  # set just after the first sync is handled
        if bot.app.scheduler is not None:
            return bot.app.scheduler
        await asyncio.sleep(0.05)
    raise AssertionError("the scheduler never started")


# ---------------------------------------------------------------------------- reading rooms


def body(event: nio.Event) -> str:
    return str(content(event).get("body", ""))


MARKS = ("✅ ", "⚠️ ", "❌ ")


def title(event: nio.Event) -> str:
    """The body without the severity mark the bot puts in front of a title."""
    text = body(event)
    for mark in MARKS:
        text = text.removeprefix(mark)
    return text


def relation(event: nio.Event) -> dict[str, Any]:
    return dict(content(event).get("m.relates_to") or {})


async def ask(user: MatrixUser, room: str, command: str) -> str:
    """The plain body of the bot's reply to `command` (also a barrier for that room)."""
    event_id = await user.say(room, command)
    return body(await user.reply_to(room, event_id, timeout=WAIT))


def from_bot(world: World, predicate: Callable[[nio.Event], bool]) -> Callable[[nio.Event], bool]:
    return lambda e: e.sender == world.setup.user_id and predicate(e)


def bot_events(
    world: World, user: MatrixUser, room: str, predicate: Callable[[nio.Event], bool]
) -> list[nio.Event]:
    return [
        e
        for e in user.events(room)
        if not isinstance(e, nio.MegolmEvent) and e.sender == world.setup.user_id and predicate(e)
    ]


def is_edit_of(prompt_id: str) -> Callable[[nio.Event], bool]:
    def check(e: nio.Event) -> bool:
        rel = relation(e)
        return rel.get("rel_type") == "m.replace" and rel.get("event_id") == prompt_id

    return check


def new_body(edit: nio.Event) -> str:
    return str(content(edit)["m.new_content"]["body"])


def is_order(measure: str) -> Callable[[nio.Event], bool]:
    return lambda e: title(e).startswith(f"EXECUTION ORDER {measure}:")


async def propose(user: MatrixUser, room: str, command: str) -> tuple[str, str]:
    """(P-id, M-id) of a `!measure propose|extend|limit|maintain|end` reply."""
    reply = await ask(user, room, command)
    match = re.search(r"Proposed (P-\d+): .*?(M-\d+)", reply)
    assert match, reply
    return match.group(1), match.group(2)


async def prompt_of(world: World, user: MatrixUser, proposal: str) -> nio.Event:
    """The prompt for `proposal`, once both of the bot's own reactions are on it."""
    return await preset_prompt(world, user, f"Approval needed: {proposal} —")


async def preset_prompt(world: World, user: MatrixUser, starts: str) -> nio.Event:
    """The bot's prompt in approvals whose title starts with `starts`, once both of the
    bot's own reactions are on it (so a vote cast next is never the first reaction)."""
    room = world.setup.rooms["approvals"]
    prompt = await user.wait_for(
        room, from_bot(world, lambda e: title(e).startswith(starts)), timeout=WAIT
    )

    def preset() -> set[str]:
        return {
            e.key
            for e in bot_events(
                world,
                user,
                room,
                lambda e: isinstance(e, nio.ReactionEvent) and e.reacts_to == prompt.event_id,
            )
        }

    await user._wait(lambda: preset() == {"✅", "❌"}, WAIT, f"✅ and ❌ on {starts!r}")
    return prompt


async def thread_reply(user: MatrixUser, room: str, root: str, text: str) -> str:
    """A reply in the thread under `root`, as Element sends it."""
    relates = {
        "rel_type": "m.thread",
        "event_id": root,
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": root},
    }
    return await user._send(
        room, "m.room.message", {"msgtype": "m.text", "body": text, "m.relates_to": relates}
    )


async def open_dossier(world: World, title: str = "Visit of the Minister of Z") -> str:
    reply = await ask(world.alice, world.coordination, f'!dossier open person "{title}"')
    match = re.search(r"D-\d{4}-\d{4}", reply)
    assert match, reply
    return match.group()


async def decided(world: World, user: MatrixUser, prompt: nio.Event) -> str:
    """The body of the decided prompt (its m.replace edit)."""
    edit = await user.wait_for(
        world.setup.rooms["approvals"], from_bot(world, is_edit_of(prompt.event_id)), WAIT
    )
    return new_body(edit)


async def show(world: World, measure: str) -> str:
    return await ask(world.admin, world.setup.rooms["approvals"], f"!measure show {measure}")


def field(shown: str, name: str) -> str:
    match = re.search(rf"^{name}: (.*)$", shown, re.MULTILINE)
    assert match, shown
    return match.group(1)


# ---------------------------------------------------------------------------- audit trail


async def audit(world: World) -> list[dict[str, Any]]:
    db = Database(world.setup.database_url)
    try:
        async with db.transaction() as s:
            rows = await s.execute(
                text("SELECT actor, action, target, event_id, detail FROM audit_log ORDER BY seq")
            )
            return [{**r._mapping, "detail": json.loads(r.detail or "{}")} for r in rows]
    finally:
        await db.close()


def actions(rows: list[dict[str, Any]], action: str, target: str | None = None) -> list[Any]:
    return [r for r in rows if r["action"] == action and (target is None or r["target"] == target)]


# ---------------------------------------------------------------------------- 1. full path


async def test_full_path_propose_approve_order_acknowledge(
    world: World, user_factory: UserFactory
) -> None:
    minister = await cast(world, user_factory, "minister", ["approver"])
    # Only where execution orders go: dossiers are shown and decided in the other rooms.
    police = await cast(world, user_factory, "police", ["police"], rooms=("operations",))
    world.setup.roles[world.alice.user_id] = ["liaison", "analyst"]
    bot = await start_bot(world, world.setup.write_config())
    try:
        rooms = world.setup.rooms
        dossier = await open_dossier(world)
        await ask(world.alice, world.coordination, f"!threat log {dossier} level=3 source=OCAD x")

        # Element-style: the ✅ arrives encrypted.
        p1, m1 = await propose(
            world.alice,
            world.coordination,
            f'!measure propose {dossier} close-protection end="in 10 days" executor=DAB '
            "public appearances during the visit",
        )
        prompt1 = await prompt_of(world, minister, p1)
        shown = body(prompt1)
        for part in (
            dossier,
            "Visit of the Minister of Z",
            "close-protection",
            world.alice.user_id,
        ):
            assert part in shown, shown
        assert "public appearances" in shown and "3 SERIOUS" in shown, shown
        assert "proposed" in field(await show(world, m1), "State")
        # The approvers are mentioned, so their clients notify them; not the proposer.
        assert content(prompt1)["m.mentions"] == {"user_ids": [minister.user_id]}
        assert pill(minister.user_id) in content(prompt1)["formatted_body"]
        # `!approvals` links each proposal to its prompt.
        assert await approvals_links(minister, rooms["approvals"]) == [
            (rooms["approvals"], prompt1.event_id)
        ]

        await minister.react(rooms["approvals"], prompt1.event_id, "✅", encrypted=True)
        outcome = await decided(world, minister, prompt1)
        assert "APPROVED" in outcome and minister.user_id in outcome, outcome
        order1 = await police.wait_for(rooms["operations"], from_bot(world, is_order(m1)), WAIT)
        assert dossier in body(order1)
        assert content(order1)["m.mentions"] == {"user_ids": [police.user_id]}
        assert field(await show(world, m1), "State") == "active"
        summary = await ask(world.alice, world.coordination, f"!dossier show {dossier}")
        assert f"• {m1} · close-protection · — → " in summary, summary
        assert re.search(rf"• {m1} · close-protection · — → .* · active\n", summary), summary

        # A police user acknowledges with ✅ on the order; the order shows it.
        await police.react(rooms["operations"], order1.event_id, "✅")
        await world.admin.wait_for(
            world.coordination,
            from_bot(world, lambda e: title(e).startswith(f"Police acknowledged {m1} ")),
            WAIT,
        )
        assert field(await show(world, m1), "Acknowledged").startswith(police.user_id)
        assert_acknowledged(await order_edit(world, police, order1), m1, police)

        # A second proposal: a plain ✅, and `!measure ack`.
        p2, m2 = await propose(
            world.alice, world.coordination, f"!measure propose {dossier} patrol route check"
        )
        prompt2 = await prompt_of(world, minister, p2)
        await minister.react(rooms["approvals"], prompt2.event_id, "✅")
        assert "APPROVED" in await decided(world, minister, prompt2)
        order2 = await police.wait_for(rooms["operations"], from_bot(world, is_order(m2)), WAIT)
        acked = await ask(police, rooms["operations"], f"!measure ack {m2}")
        assert f"{m2} acknowledged by {police.user_id}" in acked, acked
        assert field(await show(world, m2), "Acknowledged").startswith(police.user_id)
        assert_acknowledged(await order_edit(world, police, order2), m2, police)
        again = await ask(police, rooms["operations"], f"!measure ack {m2}")
        assert "already" in again, again

        # One order per approval, one edit per prompt.
        assert len(bot_events(world, police, rooms["operations"], is_order(m1))) == 1
        assert len(bot_events(world, police, rooms["operations"], is_order(m2))) == 1
        for prompt in (prompt1, prompt2):
            assert (
                len(bot_events(world, minister, rooms["approvals"], is_edit_of(prompt.event_id)))
                == 1
            )

        rows = await audit(world)
        for proposal, measure in ((p1, m1), (p2, m2)):
            assert len(actions(rows, "proposal.approved", proposal)) == 1
            approved = actions(rows, "proposal.approved", proposal)[0]
            assert approved["actor"] == minister.user_id
            assert approved["detail"]["measure"] == measure
            assert [r["actor"] for r in actions(rows, "vote.approve", proposal)] == [
                minister.user_id
            ]
        acks = actions(rows, "measure.ack", dossier)
        assert [(r["actor"], r["detail"]["measure"]) for r in acks] == [
            (police.user_id, m1),
            (police.user_id, m2),
        ]
        # The bot's own pre-set ✅/❌ on the prompts are no votes: not audited as votes.
        own = [
            r
            for r in actions(rows, "vote.ignored")
            if r["actor"] == world.setup.user_id and r["target"] in (p1, p2)
        ]
        assert own == []

        # Raised to the highest level: the liaisons are mentioned, not the one who logged it.
        # Typed in coordination, the answer and the announcement there are one message.
        await ask(world.alice, world.coordination, f"!threat log {dossier} level=4 source=OCAD y")
        raised = await world.admin.wait_for(
            world.coordination,
            from_bot(world, lambda e: "THREAT LEVEL RAISED to 4" in body(e)),
            WAIT,
        )
        assert content(raised)["m.mentions"] == {"user_ids": [world.admin.user_id]}
        assert pill(world.admin.user_id) in content(raised)["formatted_body"]
    finally:
        await bot.stop()


def pill(user_id: str) -> str:
    return f'<a href="https://matrix.to/#/{quote(user_id, safe="")}">'


async def approvals_links(user: MatrixUser, room: str) -> list[tuple[str, str]]:
    """(room, event) of each matrix.to link in the answer to `!approvals`."""
    answer = await user.reply_to(room, await user.say(room, "!approvals"), timeout=WAIT)
    html = str(content(answer)["formatted_body"])
    return [
        (unquote(room_id), unquote(event_id))
        for room_id, event_id in re.findall(r'href="https://matrix\.to/#/([^"/]+)/([^"/]+)"', html)
    ]


async def order_edit(world: World, police: MatrixUser, order: nio.Event) -> dict[str, Any]:
    """The new content of the order's edit."""
    edit = await police.wait_for(
        world.setup.rooms["operations"], from_bot(world, is_edit_of(order.event_id)), WAIT
    )
    return dict(content(edit)["m.new_content"])


def assert_acknowledged(new: dict[str, Any], measure: str, police: MatrixUser) -> None:
    shown = str(new["body"])
    assert shown.removeprefix("✅ ").startswith(f"EXECUTION ORDER {measure}:"), shown
    when = r"\w{3} \d{2} \w{3} \d{4} \d{2}:\d{2}"  # local time, as people read it
    assert re.search(rf"Acknowledged by {re.escape(police.user_id)} at {when}$", shown), shown
    assert "acknowledge with" not in shown


# ---------------------------------------------------------------------------- 2. who counts


async def test_who_counts_four_eyes_and_quorum(world: World, user_factory: UserFactory) -> None:
    ap1 = await cast(world, user_factory, "ap1", ["approver"], rooms=("approvals",))
    ap2 = await cast(world, user_factory, "ap2", ["approver"], rooms=("approvals",))
    # Proposes and also holds approver: the proposer's own ✅ must never count.
    mina = await cast(world, user_factory, "mina", ["liaison", "approver"], rooms=("approvals",))
    # Cleared to read the prompts, but not to decide them.
    ana = await cast(world, user_factory, "ana", ["analyst"], rooms=("approvals",))
    bot = await start_bot(world, world.setup.write_config(approval={"quorum": 2}))
    try:
        approvals = world.setup.rooms["approvals"]
        dossier = await open_dossier(world)

        # A non-approver's ✅ (a liaison, and an analyst) does not count.
        p1, m1 = await propose(
            world.alice, world.coordination, f"!measure propose {dossier} patrol night rounds"
        )
        prompt1 = await prompt_of(world, ap1, p1)
        await world.alice.react(approvals, prompt1.event_id, "✅")
        await ana.react(approvals, prompt1.event_id, "👍")
        await ap1.react(approvals, prompt1.event_id, "✅")
        assert p1 in await ask(world.admin, approvals, "!approvals")  # quorum 2: 1 is not enough
        assert field(await show(world, m1), "State") == "proposed"
        # Rationale in a thread: only an approver's counts, and only the first.
        await thread_reply(ana, approvals, prompt1.event_id, "not my call")
        await thread_reply(ap1, approvals, prompt1.event_id, "the threat is credible")
        await thread_reply(ap2, approvals, prompt1.event_id, "agreed")
        await ap2.react(approvals, prompt1.event_id, "✔️")  # a variant: still ✅
        outcome = await decided(world, ap1, prompt1)
        assert "APPROVED" in outcome and ap1.user_id in outcome and ap2.user_id in outcome
        assert "Rationale: the threat is credible" in outcome, outcome
        shown = await show(world, m1)
        assert field(shown, "State") == "active"
        assert "rationale: the threat is credible" in shown, shown

        # The proposer holds approver; their ✅ plus one other approver's is not a quorum.
        p2, m2 = await propose(mina, approvals, f"!measure propose {dossier} checks at the door")
        prompt2 = await prompt_of(world, ap1, p2)
        await mina.react(approvals, prompt2.event_id, "✅", encrypted=True)
        await ap1.react(approvals, prompt2.event_id, "👍🏽", encrypted=True)
        assert p2 in await ask(world.admin, approvals, "!approvals")
        assert field(await show(world, m2), "State") == "proposed"
        await ap2.react(approvals, prompt2.event_id, "✅")
        assert "APPROVED" in await decided(world, ap1, prompt2)
        assert field(await show(world, m2), "State") == "active"

        # The proposer's room (here the approvals room) and the coordination room are told.
        for room in (approvals, world.coordination):
            await world.admin.wait_for(
                room, from_bot(world, lambda e: title(e).startswith(f"{p2} approved")), WAIT
            )

        rows = await audit(world)
        ignored = {
            (r["actor"], r["target"], r["detail"]["reason"]) for r in actions(rows, "vote.ignored")
        }
        assert (world.alice.user_id, p1, "not an approver") in ignored
        assert (ana.user_id, p1, "not an approver") in ignored
        assert (mina.user_id, p2, "four eyes: the proposer's vote never counts") in ignored
        assert [r["actor"] for r in actions(rows, "vote.approve", p1)] == [
            ap1.user_id,
            ap2.user_id,
        ]
        assert [r["actor"] for r in actions(rows, "vote.approve", p2)] == [
            ap1.user_id,
            ap2.user_id,
        ]
        assert len(actions(rows, "proposal.approved", p1)) == 1
        assert len(actions(rows, "proposal.approved", p2)) == 1
        assert [r["actor"] for r in actions(rows, "proposal.rationale", p1)] == [ap1.user_id]
    finally:
        await bot.stop()


# ---------------------------------------------------------------------------- 3. reject, withdraw


async def test_reject_withdraw_and_reactions_after_the_decision(
    world: World, user_factory: UserFactory
) -> None:
    ap1 = await cast(world, user_factory, "ap1", ["approver"], rooms=("approvals",))
    ap2 = await cast(world, user_factory, "ap2", ["approver"], rooms=("approvals",))
    police = await cast(world, user_factory, "police", ["police"], rooms=("operations",))
    ana = await cast(world, user_factory, "ana", ["analyst"], rooms=("operations",))
    bot = await start_bot(world, world.setup.write_config(approval={"quorum": 2}))
    try:
        approvals, operations = world.setup.rooms["approvals"], world.setup.rooms["operations"]
        dossier = await open_dossier(world)

        # ❌ from one approver rejects, whatever the quorum.
        p1, m1 = await propose(
            world.alice, world.coordination, f"!measure propose {dossier} fixed-post at home"
        )
        prompt1 = await prompt_of(world, ap1, p1)
        await ap1.react(approvals, prompt1.event_id, "❌", encrypted=True)
        outcome = await decided(world, ap1, prompt1)
        assert "REJECTED" in outcome and ap1.user_id in outcome, outcome
        assert field(await show(world, m1), "State") == "rejected"
        await world.alice.wait_for(
            world.coordination,
            from_bot(world, lambda e: title(e).startswith(f"{p1} rejected")),
            WAIT,
        )

        # A reaction after the decision changes nothing.
        await ap2.react(approvals, prompt1.event_id, "✅")
        await ap1.react(approvals, prompt1.event_id, "✅")
        assert field(await show(world, m1), "State") == "rejected"
        assert len(bot_events(world, ap1, approvals, is_edit_of(prompt1.event_id))) == 1

        # ✅ then its redaction: the vote is withdrawn; a second approver's ✅ alone is then
        # one vote, not two.
        p2, m2 = await propose(
            world.alice, world.coordination, f"!measure propose {dossier} techno-prevention cameras"
        )
        prompt2 = await prompt_of(world, ap1, p2)
        vote = await ap1.react(approvals, prompt2.event_id, "✅")
        assert p2 in await ask(world.admin, approvals, "!approvals")
        await ap1.redact(approvals, vote)
        assert p2 in await ask(world.admin, approvals, "!approvals")
        await ap2.react(approvals, prompt2.event_id, "✅")
        assert p2 in await ask(world.admin, approvals, "!approvals")
        assert field(await show(world, m2), "State") == "proposed"
        assert not bot_events(world, ap1, approvals, is_edit_of(prompt2.event_id))
        # ap1 votes again: now there are two.
        await ap1.react(approvals, prompt2.event_id, "☑️")
        assert "APPROVED" in await decided(world, ap1, prompt2)
        order = await police.wait_for(operations, from_bot(world, is_order(m2)), WAIT)
        # A withdrawal after the decision changes nothing either.
        await ap2.react(approvals, prompt2.event_id, "❌")
        assert field(await show(world, m2), "State") == "active"
        # Acknowledging is for the police (an analyst's ✅ is ignored and audited), and only
        # with a vote emoji.
        await ana.react(operations, order.event_id, "✅")
        await police.react(operations, order.event_id, "👀")
        # Asked in approvals: a measure's history (rationales) is not for the police's room.
        assert field(await show(world, m2), "Acknowledged") == "no"

        # Withdrawal: the proposer only, and the prompt says so.
        p3, m3 = await propose(
            world.alice, world.coordination, f"!measure propose {dossier} checks at the gate"
        )
        prompt3 = await prompt_of(world, ap1, p3)
        refused = await ask(world.admin, world.coordination, f"!proposal withdraw {p3}")
        assert "only the proposer" in refused, refused
        assert "Withdrawn" in await ask(world.alice, world.coordination, f"!proposal withdraw {p3}")
        assert "WITHDRAWN" in await decided(world, ap1, prompt3)
        await ap1.react(approvals, prompt3.event_id, "✅")
        await ap2.react(approvals, prompt3.event_id, "✅")
        assert field(await show(world, m3), "State") == "withdrawn"

        # Urgent: in force at once, provisionally; a rejection (👎) ends it and stops the police.
        refused = await ask(
            world.alice, world.coordination, f"!measure propose {dossier} patrol urgent=yes now"
        )
        assert "urgent=yes needs role admin" in refused, refused
        p4, m4 = await propose(
            world.admin,
            world.coordination,
            f"!measure propose {dossier} patrol urgent=yes threats posted this morning",
        )
        assert field(await show(world, m4), "State") == "provisional"
        await police.wait_for(
            operations,
            from_bot(world, lambda e: title(e).startswith("PROVISIONAL ORDER (urgent")),
            WAIT,
        )
        prompt4 = await prompt_of(world, ap1, p4)
        await ap2.react(approvals, prompt4.event_id, "👎🏿")
        assert "REJECTED" in await decided(world, ap1, prompt4)
        await police.wait_for(
            operations,
            from_bot(world, lambda e: title(e).startswith(f"STOP: provisional {m4}")),
            WAIT,
        )
        assert field(await show(world, m4), "State") == "ended"

        rows = await audit(world)
        assert [r["actor"] for r in actions(rows, "proposal.rejected", p4)] == [ap2.user_id]
        assert [r["actor"] for r in actions(rows, "proposal.withdraw", dossier)] == [
            world.alice.user_id
        ]
        assert [r["actor"] for r in actions(rows, "refused:proposal withdraw")] == [
            world.admin.user_id
        ]
        assert [r["actor"] for r in actions(rows, "proposal.rejected", p1)] == [ap1.user_id]
        assert not actions(rows, "proposal.approved", p1)
        assert len(actions(rows, "proposal.approved", p2)) == 1
        assert [r["actor"] for r in actions(rows, "vote.withdrawn", p2)] == [ap1.user_id]
        assert (ana.user_id, m2, "only the police acknowledge orders") in {
            (r["actor"], r["target"], r["detail"]["reason"]) for r in actions(rows, "vote.ignored")
        }
        decided_reasons = [
            r["actor"]
            for r in actions(rows, "vote.ignored")
            if r["detail"]["reason"] == "the proposal is decided already"
        ]
        assert sorted(decided_reasons) == sorted(
            [ap2.user_id, ap1.user_id, ap2.user_id, ap1.user_id, ap2.user_id]
        )
    finally:
        await bot.stop()


# ---------------------------------------------------------------------------- 4. outage


async def test_votes_cast_while_the_bot_was_down(
    world: World, user_factory: UserFactory, tmp_path: Path
) -> None:
    ap1 = await cast(world, user_factory, "ap1", ["approver"], rooms=("approvals",))
    ap2 = await cast(world, user_factory, "ap2", ["approver"], rooms=("approvals",))
    police = await cast(world, user_factory, "police", ["police"], rooms=("operations",))
    bot = BotProcess(world.setup.write_config(), tmp_path / "bot.log")
    approvals, operations = world.setup.rooms["approvals"], world.setup.rooms["operations"]
    try:
        bot.start()
        for key in ("coordination", "approvals", "operations"):
            await world.admin.wait_for_member(world.setup.rooms[key], world.setup.user_id, WAIT)
        dossier = await open_dossier(world)
        pa, ma = await propose(
            world.alice, world.coordination, f"!measure propose {dossier} close-protection visit"
        )
        pb, mb = await propose(
            world.alice, world.coordination, f"!measure propose {dossier} patrol around the house"
        )
        prompt_a = await prompt_of(world, ap1, pa)
        prompt_b = await prompt_of(world, ap2, pb)

        bot.kill()
        await ap1.react(approvals, prompt_a.event_id, "✅", encrypted=True)
        against = await ap2.react(approvals, prompt_b.event_id, "❌")
        await ap2.redact(approvals, against)
        await asyncio.sleep(1)

        bot.start()
        assert "APPROVED" in await decided(world, ap1, prompt_a)
        await police.wait_for(operations, from_bot(world, is_order(ma)), WAIT)
        waiting = await ask(world.admin, approvals, "!approvals")
        assert pb in waiting and pa not in waiting, waiting
        assert field(await show(world, mb), "State") == "proposed"
        assert field(await show(world, ma), "State") == "active"

        # Killed and started once more: reconciling again decides nothing twice.
        bot.kill()
        bot.start()
        await world.admin.wait_for_member(approvals, world.setup.user_id, WAIT)
        assert pb in await ask(world.admin, approvals, "!approvals")
        assert field(await show(world, mb), "State") == "proposed"
        assert len(bot_events(world, ap1, approvals, is_edit_of(prompt_a.event_id))) == 1
        assert not bot_events(world, ap1, approvals, is_edit_of(prompt_b.event_id))
        assert len(bot_events(world, police, operations, is_order(ma))) == 1

        # Each start reconciled the open prompts (B at least, A too if sync had not got to it).
        log = (tmp_path / "bot.log").read_text()
        assert len(re.findall(r"reconciled [12] pending prompts", log)) == 2, log
        rows = await audit(world)
        assert [r["actor"] for r in actions(rows, "proposal.approved", pa)] == [ap1.user_id]
        assert [r["actor"] for r in actions(rows, "vote.approve", pa)] == [ap1.user_id]
        assert not [r for r in rows if r["target"] == pb and r["action"].startswith("proposal.")]
        assert not actions(rows, "vote.reject", pb) or actions(rows, "vote.withdrawn", pb)
    finally:
        bot.kill()


async def test_an_undecryptable_reaction_on_a_prompt_does_not_stop_the_next_start(
    world: World, user_factory: UserFactory
) -> None:
    """Reconciling reads every reaction on a pending prompt; one the bot holds no key for
    must be passed over, not crash the start (and not count)."""
    ap1 = await cast(world, user_factory, "ap1", ["approver"], rooms=("approvals",))
    ap2 = await cast(world, user_factory, "ap2", ["approver"], rooms=("approvals",))
    config = world.setup.write_config()
    approvals = world.setup.rooms["approvals"]
    bot = await start_bot(world, config)
    try:
        dossier = await open_dossier(world)
        proposal, measure = await propose(
            world.alice, world.coordination, f"!measure propose {dossier} patrol nightly"
        )
        prompt = await prompt_of(world, ap1, proposal)
        await ap1.say(approvals, "hello")  # learn the bot's device
        bot_device = ap1.client.device_store[world.setup.user_id][world.setup.device_id]
        ap1.client.blacklist_device(bot_device)  # the bot will not get the next room key
        ap1.client.invalidate_outbound_session(approvals)
        await ap1.react(approvals, prompt.event_id, "✅", encrypted=True)
        assert proposal in await ask(world.admin, approvals, "!approvals")
        await bot.stop()

        bot = await start_bot(world, config)
        assert proposal in await ask(world.admin, approvals, "!approvals")
        assert bot.task is not None and not bot.task.done()  # still running
        await ap2.react(approvals, prompt.event_id, "✅")
        assert "APPROVED" in await decided(world, ap2, prompt)
        assert field(await show(world, measure), "State") == "active"
    finally:
        await bot.stop()


# ---------------------------------------------------------------------------- 5. lifecycle


async def test_lifecycle_changes_apply_only_once_approved(
    world: World, user_factory: UserFactory
) -> None:
    minister = await cast(world, user_factory, "minister", ["approver"], rooms=("approvals",))
    bot = await start_bot(world, world.setup.write_config())
    approvals = world.setup.rooms["approvals"]
    outcomes: dict[str, str] = {}

    async def approve(command: str) -> tuple[str, str]:
        proposal, measure = await propose(world.alice, world.coordination, command)
        before = await show(world, measure)
        prompt = await prompt_of(world, minister, proposal)
        assert await show(world, measure) == before  # nothing changes while pending
        await minister.react(approvals, prompt.event_id, "✅")
        outcomes[proposal] = await decided(world, minister, prompt)
        assert "APPROVED" in outcomes[proposal]
        return proposal, before

    def day_in(days: int) -> str:
        """The local date `days` from now, as replies write it."""
        return f"{datetime.now(BRUSSELS) + timedelta(days=days):%a %d %b %Y}"

    try:
        dossier = await open_dossier(world)
        p0, measure = await propose(
            world.alice,
            world.coordination,
            f'!measure propose {dossier} checks end="in 10 days" identity checks',
        )
        prompt0 = await prompt_of(world, minister, p0)
        await minister.react(approvals, prompt0.event_id, "✅")
        await decided(world, minister, prompt0)
        start = await show(world, measure)
        assert field(start, "State") == "active"
        # "in 10 days" names a day: the measure lasts to the end of it, in local time.
        assert field(start, "Period").endswith(f"→ {day_in(10)} end of day"), start

        p_ext, before = await approve(
            f'!measure extend {measure} end="in 20 days" the visit is prolonged'
        )
        assert field(before, "Period") == field(start, "Period")
        extended = await show(world, measure)
        assert field(extended, "Period") != field(before, "Period")
        assert field(extended, "Period").endswith(f"→ {day_in(20)} end of day"), extended
        # The change reads as the period does: local and human, never an ISO instant.
        assert f"extend {measure} to end {day_in(20)} end of day" in outcomes[p_ext]
        assert f"— end {day_in(20)} end of day" in extended, extended
        for shown in (outcomes[p_ext], extended):
            assert not ISO_INSTANT.search(shown), shown

        p_lim, before = await approve(f'!measure limit {measure} "daytime only" threat lower')
        assert "limited" not in field(before, "Details")
        assert "[limited: daytime only]" in field(await show(world, measure), "Details")

        p_mnt, before = await approve(
            f'!measure maintain {measure} review="in 5 days" threat unchanged'
        )
        assert field(before, "Review") == "—" or "review" not in field(before, "Review")
        maintained = await show(world, measure)
        assert field(maintained, "Review") != field(before, "Review")

        p_end, before = await approve(f"!measure end {measure} the visit is over")
        assert field(before, "State") == "active"
        assert field(await show(world, measure), "State") == "ended"

        # Approved to start later: not in force yet, and never shown as active.
        p_later, _ = await approve(f'!measure propose {dossier} patrol start="in 3 days" x')
        later = re.search(r"new (M-\d+)", outcomes[p_later])
        assert later, outcomes[p_later]
        starts = f"approved, starts {day_in(3)} 00:00"
        assert field(await show(world, later.group(1)), "State") == starts
        listed = await ask(world.admin, approvals, f"!measure list {dossier}")
        assert f"{later.group(1)} · {dossier} · patrol · {starts} · " in listed, listed

        refused = await ask(
            world.alice, world.coordination, f'!measure extend {measure} end="in 30 days" x'
        )
        assert "only a measure in force" in refused, refused

        past = await ask(
            world.alice, world.coordination, f'!measure propose {dossier} patrol end="yesterday" x'
        )
        assert "in the past" in past, past
        closed = await open_dossier(world, "Closed visit")
        await ask(world.alice, world.coordination, f"!dossier close {closed} over")
        refused = await ask(world.alice, world.coordination, f"!measure propose {closed} patrol x")
        assert "closed" in refused and "Proposed" not in refused, refused

        operations = world.setup.rooms["operations"]
        await ask(world.admin, operations, "!approvals")
        changes = bot_events(
            world,
            world.admin,
            operations,
            lambda e: title(e).startswith(f"CHANGE ORDER {measure}:"),
        )
        assert len(changes) == 4, [body(e) for e in changes]

        rows = await audit(world)
        for proposal in (p0, p_ext, p_lim, p_mnt, p_end):
            assert [r["actor"] for r in actions(rows, "proposal.approved", proposal)] == [
                minister.user_id
            ]
        history = await show(world, measure)
        for proposal in (p0, p_ext, p_lim, p_mnt, p_end):
            assert re.search(
                rf"{proposal} \w+ by .* approved by {re.escape(minister.user_id)}", history
            )
    finally:
        await bot.stop()


# ---------------------------------------------------------------------------- 6. time


async def test_nudge_expiry_and_end_of_measure_under_a_fake_clock(
    world: World, user_factory: UserFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the explicit ticks (and the one at each start) run: no background tick can slip
    # in between moving the clock and the test's tick.
    monkeypatch.setattr("bot.scheduler.LONGEST_SLEEP", 3600.0)
    minister = await cast(world, user_factory, "minister", ["approver"], rooms=("approvals",))
    deputy = await cast(world, user_factory, "deputy", ["approver"], rooms=("approvals",))
    config = world.setup.write_config()  # nudge 4 h, expiry 72 h, end warning 3 days
    clock = FakeClock()
    bot = await start_bot(world, config, clock)
    approvals, coordination = world.setup.rooms["approvals"], world.coordination
    operations = world.setup.rooms["operations"]
    reader = world.admin

    def nudges(proposal: str) -> list[nio.Event]:
        return bot_events(
            world, reader, approvals, lambda e: f"Reminder: {proposal} has waited" in body(e)
        )

    def in_coordination(prefix: str) -> list[nio.Event]:
        return bot_events(world, reader, coordination, lambda e: title(e).startswith(prefix))

    async def tick(running: InProcessBot) -> int:
        done = await (await scheduler_of(running)).tick()
        # Barriers in every room the steps post to: everything enqueued has been sent.
        await ask(reader, approvals, "!approvals")
        await ask(reader, coordination, "!approvals")
        await ask(reader, operations, "!approvals")
        return done

    try:
        dossier = await open_dossier(world)
        stale, _ = await propose(
            world.alice, coordination, f"!measure propose {dossier} priority-calls hotline"
        )
        ending, measure = await propose(
            world.alice,
            coordination,
            f'!measure propose {dossier} patrol end="in 120 hours" rounds',
        )
        await prompt_of(world, reader, stale)
        prompt = await prompt_of(world, minister, ending)
        await minister.react(approvals, prompt.event_id, "✅")
        await decided(world, minister, prompt)

        assert await tick(bot) == 0
        assert not nudges(stale)

        clock.advance(hours=4, minutes=1)
        assert await tick(bot) == 1
        assert len(nudges(stale)) == 1
        mentioned = content(nudges(stale)[0])["m.mentions"]["user_ids"]
        assert set(mentioned) == {minister.user_id, deputy.user_id}
        assert await tick(bot) == 0  # same interval: nothing
        assert len(nudges(stale)) == 1
        clock.advance(hours=2)  # still the same interval
        assert await tick(bot) == 0
        assert len(nudges(stale)) == 1
        clock.advance(hours=2)  # the next interval
        assert await tick(bot) == 1
        assert len(nudges(stale)) == 2

        # Just before the end warning is due (5 d - 3 d): nothing about the measure yet.
        clock.advance(hours=48 - 8 - 2)
        await tick(bot)
        assert not in_coordination(f"{measure} (patrol, {dossier}) ends in")
        clock.advance(hours=3)
        await tick(bot)
        assert len(in_coordination(f"{measure} (patrol, {dossier}) ends in 3 days")) == 1
        await tick(bot)
        assert len(in_coordination(f"{measure} (patrol, {dossier}) ends in")) == 1
        count = len(nudges(stale))

        # A new process on the same database and clock does nothing again.
        await bot.stop()
        bot = await start_bot(world, config, clock)
        assert await tick(bot) == 0
        assert len(in_coordination(f"{measure} (patrol, {dossier}) ends in")) == 1
        assert len(nudges(stale)) == count

        # Past expire_after: the proposal expires, the proposer's room is told.
        clock.advance(hours=24)
        await tick(bot)
        assert len(in_coordination(f"{stale} expired")) == 1
        expired_prompt = await prompt_of(world, reader, stale)
        assert "EXPIRED" in await decided(world, reader, expired_prompt)
        await tick(bot)
        assert len(in_coordination(f"{stale} expired")) == 1
        assert field(await show(world, measure), "State") == "active"

        # At its end date the measure ends, once.
        clock.advance(hours=48)
        await tick(bot)
        assert field(await show(world, measure), "State") == "ended"
        ended = f"{measure} (patrol, {dossier}) has ended"
        assert len(in_coordination(ended)) == 1
        stop = bot_events(
            world, reader, operations, lambda e: title(e).startswith(f"STOP executing {measure}")
        )
        assert len(stop) == 1
        assert await tick(bot) == 0
        await bot.stop()
        bot = await start_bot(world, config, clock)
        assert await tick(bot) == 0
        assert len(in_coordination(ended)) == 1
        assert len(in_coordination(f"{measure} (patrol, {dossier}) ends in")) == 1

        rows = await audit(world)
        assert len(actions(rows, "proposal.expired", stale)) == 1
        assert len(actions(rows, "measure.end-warning", dossier)) == 1
        assert len(actions(rows, "measure.ended", dossier)) == 1
    finally:
        await bot.stop()


async def test_an_urgent_measure_that_ended_at_its_end_date_stays_ended_when_approved_late(
    world: World, user_factory: UserFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.scheduler.LONGEST_SLEEP", 3600.0)
    minister = await cast(world, user_factory, "minister", ["approver"], rooms=("approvals",))
    config = world.setup.write_config()
    clock = FakeClock()
    bot = await start_bot(world, config, clock)
    approvals = world.setup.rooms["approvals"]
    try:
        scheduler = await scheduler_of(bot)
        dossier = await open_dossier(world)
        proposal, measure = await propose(
            world.admin,
            world.coordination,
            f'!measure propose {dossier} fixed-post urgent=yes end="in 24 hours" tonight only',
        )
        prompt = await prompt_of(world, minister, proposal)
        await scheduler.tick()  # the end warning (the end is less than 3 days away)
        clock.advance(hours=25)
        await scheduler.tick()  # the end
        assert field(await show(world, measure), "State") == "ended"
        await minister.react(approvals, prompt.event_id, "✅")
        assert "APPROVED" in await decided(world, minister, prompt)
        # Approving afterwards must not put back in force a measure past its end date:
        # its end has fired already and would never fire again.
        assert field(await show(world, measure), "State") == "ended"
        operations = world.setup.rooms["operations"]
        await ask(world.admin, operations, "!approvals")
        said = [title(e) for e in bot_events(world, world.admin, operations, lambda e: True)]
        assert any(t.startswith(f"STOP executing {measure}") for t in said), said
        assert not any(t.startswith("CONFIRMED") for t in said), said
    finally:
        await bot.stop()


# ---------------------------------------------------------------------------- 7. race


@pytest.mark.timeout(900)
async def test_twenty_racing_approvals_make_one_decision(
    world: World, user_factory: UserFactory
) -> None:
    approvers = await asyncio.gather(*(user_factory(f"ap{n:02d}") for n in range(20)))
    approvals = world.setup.rooms["approvals"]
    for approver in approvers:
        world.setup.roles[approver.user_id] = ["approver"]
        await world.admin.invite(approvals, approver.user_id)
    await asyncio.gather(*(approver.join(approvals) for approver in approvers))
    police = await cast(world, user_factory, "police", ["police"], rooms=("operations",))
    bot = await start_bot(world, world.setup.write_config())
    try:
        dossier = await open_dossier(world)
        proposal, measure = await propose(
            world.alice, world.coordination, f"!measure propose {dossier} close-protection visit"
        )
        prompt = await prompt_of(world, approvers[0], proposal)
        await asyncio.gather(
            *(a.wait_for(approvals, lambda e: e.event_id == prompt.event_id) for a in approvers)
        )
        await asyncio.gather(
            *(
                a.react(approvals, prompt.event_id, "✅", encrypted=n % 2 == 0)
                for n, a in enumerate(approvers)
            )
        )
        assert "APPROVED" in await decided(world, approvers[0], prompt)
        await police.wait_for(
            world.setup.rooms["operations"], from_bot(world, is_order(measure)), WAIT
        )

        # Every reaction handled (each one audited) before counting.
        async def all_handled() -> None:
            while True:
                rows = await audit(world)
                votes = [
                    r
                    for r in rows
                    if r["target"] == proposal
                    and r["action"] in ("vote.approve", "vote.ignored")
                    and r["actor"] != world.setup.user_id
                ]
                if len(votes) >= 20:
                    return
                await asyncio.sleep(0.5)

        await asyncio.wait_for(all_handled(), WAIT)
        await ask(world.admin, approvals, "!approvals")
        await ask(world.admin, world.setup.rooms["operations"], "!approvals")
        assert len(bot_events(world, approvers[0], approvals, is_edit_of(prompt.event_id))) == 1
        assert (
            len(bot_events(world, police, world.setup.rooms["operations"], is_order(measure))) == 1
        )
        rows = await audit(world)
        assert len(actions(rows, "proposal.approved", proposal)) == 1
        assert len(actions(rows, "vote.approve", proposal)) == 1  # quorum 1: the first decides
        late = [
            r
            for r in actions(rows, "vote.ignored", proposal)
            if r["detail"]["reason"] == "the proposal is decided already"
        ]
        assert len(late) == 19
    finally:
        await bot.stop()
