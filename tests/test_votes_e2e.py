"""Issue 11's four eyes against the real homeserver: a vote counts only in the prompt's own
room and with its relation in clear; only the voter's own redaction withdraws it, live and
when read back after a restart; a vote that does not count is told once, in the thread.

A "barrier" is a command sent in the same room after a reaction: the bot handles a room's
events in order and sends its outbox in order, so once the barrier's answer is in, anything
the reaction caused is in too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import nio
import pytest

import bot.app
from bot.pipeline import Pipeline
from bot.reconcile import reconcile_prompts, redaction_of
from tests.conftest import UserFactory
from tests.support.matrix_user import MatrixUser
from tests.support.world import World
from tests.test_measures_e2e import (
    WAIT,
    actions,
    ask,
    audit,
    body,
    cast,
    decided,
    field,
    from_bot,
    open_dossier,
    prompt_of,
    propose,
    relation,
    show,
    start_bot,
)


def in_thread_of(prompt: nio.Event) -> Callable[[nio.Event], bool]:
    def check(e: nio.Event) -> bool:
        rel = relation(e)
        return rel.get("rel_type") == "m.thread" and rel.get("event_id") == prompt.event_id

    return check


def thread_notices(world: World, user: MatrixUser, prompt: nio.Event) -> list[nio.Event]:
    room = world.setup.rooms["approvals"]
    check = from_bot(world, in_thread_of(prompt))
    return [e for e in user.events(room) if not isinstance(e, nio.MegolmEvent) and check(e)]


def reasons(rows: list[dict[str, Any]], proposal: str) -> list[tuple[str, str]]:
    return [(r["actor"], r["detail"]["reason"]) for r in actions(rows, "vote.ignored", proposal)]


# ---------------------------------------------------------------------------- redactions


async def test_a_redaction_by_another_user_leaves_the_vote_counted(
    world: World, user_factory: UserFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin created the approvals room and may redact anyone's event there. Their
    redaction of an approver's ✅ is audited and the vote stays counted, whether the bot saw
    it live or read it back after a restart (relations API + the redaction itself)."""
    ap1 = await cast(world, user_factory, "ap1", ["approver"], rooms=("approvals",))
    ap2 = await cast(world, user_factory, "ap2", ["approver"], rooms=("approvals",))
    config = world.setup.write_config(approval={"quorum": 2})
    approvals = world.setup.rooms["approvals"]
    reconciled = asyncio.Event()

    async def reconcile_and_tell(client: nio.AsyncClient, pipeline: Pipeline) -> int:
        try:
            return await reconcile_prompts(client, pipeline)
        finally:
            reconciled.set()

    monkeypatch.setattr(bot.app, "reconcile_prompts", reconcile_and_tell)
    running = await start_bot(world, config)
    try:
        dossier = await open_dossier(world)

        # Live.
        p1, m1 = await propose(
            world.alice, world.coordination, f"!measure propose {dossier} patrol nightly"
        )
        prompt1 = await prompt_of(world, ap1, p1)
        vote1 = await ap1.react(approvals, prompt1.event_id, "✅", encrypted=True)
        # Counted first: a reaction redacted before the bot read it reaches nobody with its
        # content (the homeserver prunes it), so there would be no vote to keep.
        assert p1 in await ask(world.admin, approvals, "!approvals")
        await world.admin.redact(approvals, vote1)
        assert p1 in await ask(world.admin, approvals, "!approvals")
        await ap2.react(approvals, prompt1.event_id, "✅")
        outcome = await decided(world, ap1, prompt1)
        assert "APPROVED" in outcome and ap1.user_id in outcome and ap2.user_id in outcome
        assert field(await show(world, m1), "State") == "active"

        # Redacted while the bot is down.
        p2, m2 = await propose(
            world.alice, world.coordination, f"!measure propose {dossier} checks at the gate"
        )
        prompt2 = await prompt_of(world, ap1, p2)
        vote2 = await ap1.react(approvals, prompt2.event_id, "✅")
        assert p2 in await ask(world.admin, approvals, "!approvals")  # counted before the stop
        await running.stop()
        reconciled.clear()
        await world.admin.redact(approvals, vote2)
        # What the read-back finds: the homeserver's record of who redacted the reaction.
        redaction = await redaction_of(world.admin.client, approvals, vote2)
        assert isinstance(redaction, nio.RedactionEvent)
        assert redaction.sender == world.admin.user_id and redaction.redacts == vote2

        running = await start_bot(world, config)
        await asyncio.wait_for(reconciled.wait(), WAIT)
        assert p2 in await ask(world.admin, approvals, "!approvals")
        await ap2.react(approvals, prompt2.event_id, "✅")
        outcome = await decided(world, ap1, prompt2)
        assert "APPROVED" in outcome and ap1.user_id in outcome and ap2.user_id in outcome
        assert field(await show(world, m2), "State") == "active"

        rows = await audit(world)
        for proposal, vote in ((p1, vote1), (p2, vote2)):
            # One entry each, though P-2's redaction was seen by both the sync and the
            # read-back: the redaction's handled-event mark keeps it to once.
            [ignored] = actions(rows, "vote.redaction_ignored", proposal)
            assert ignored["actor"] == world.admin.user_id
            assert ignored["detail"] == {
                "reason": "redacted by someone other than the voter",
                "voter": ap1.user_id,
            }
            assert not actions(rows, "vote.withdrawn", proposal)
            assert [r["actor"] for r in actions(rows, "vote.approve", proposal)] == [
                ap1.user_id,
                ap2.user_id,
            ]
            assert vote in {r["event_id"] for r in actions(rows, "vote.approve", proposal)}
    finally:
        await running.stop()


# ---------------------------------------------------------------------------- votes from elsewhere


async def test_a_reaction_from_another_room_or_with_a_hidden_relation_does_not_count(
    world: World, user_factory: UserFactory
) -> None:
    """An approver in coordination sends an encrypted ✅ whose ciphertext names the prompt
    (the homeserver refuses a relation in clear to another room's event, so the relation is
    hidden). In the approvals room, an encrypted ✅ whose relation in clear is missing or
    names another event. None counts, each is audited, none gets feedback; the approver's
    ordinary encrypted ✅ then decides."""
    ap1 = await cast(world, user_factory, "ap1", ["approver"], rooms=("approvals", "coordination"))
    approvals = world.setup.rooms["approvals"]
    running = await start_bot(world, world.setup.write_config())
    try:
        dossier = await open_dossier(world)
        proposal, measure = await propose(
            world.alice, world.coordination, f"!measure propose {dossier} patrol nightly"
        )
        prompt = await prompt_of(world, ap1, proposal)

        with pytest.raises(RuntimeError, match="same room"):
            await ap1.react(world.coordination, prompt.event_id, "✅")
        await ap1.react_sealed(world.coordination, prompt.event_id, "✅", None)
        assert proposal in await ask(world.admin, world.coordination, "!approvals")

        await ap1.react_sealed(approvals, prompt.event_id, "✅", None)
        barrier = await world.admin.say(approvals, "!approvals")
        assert proposal in body(await world.admin.reply_to(approvals, barrier, WAIT))
        forged = {"rel_type": "m.annotation", "event_id": barrier, "key": "👍"}
        await ap1.react_sealed(approvals, prompt.event_id, "👍", forged)
        assert proposal in await ask(world.admin, approvals, "!approvals")
        assert field(await show(world, measure), "State") == "proposed"

        await ap1.react(approvals, prompt.event_id, "✅", encrypted=True)
        assert "APPROVED" in await decided(world, ap1, prompt)

        rows = await audit(world)
        assert reasons(rows, proposal) == [
            (ap1.user_id, "not in the prompt's room"),
            (ap1.user_id, "the relation in clear differs from the encrypted one"),
            (ap1.user_id, "the relation in clear differs from the encrypted one"),
        ]
        [counted] = actions(rows, "vote.approve", proposal)
        assert counted["actor"] == ap1.user_id
        assert not thread_notices(world, ap1, prompt)
    finally:
        await running.stop()


# ---------------------------------------------------------------------------- feedback


async def test_a_vote_that_does_not_count_is_told_once_in_the_prompts_thread(
    world: World, user_factory: UserFactory
) -> None:
    """A liaison's ✅ and then ❌, the proposer's own ✅, a late ❌: one notice per user, in
    the prompt's thread, naming IDs only; a bad vote after a restart is not answered again.
    The bot's own pre-set ✅ and ❌ leave no audit entry."""
    mina = await cast(world, user_factory, "mina", ["liaison", "approver"], rooms=("approvals",))
    ap1 = await cast(world, user_factory, "ap1", ["approver"], rooms=("approvals",))
    config = world.setup.write_config()
    approvals = world.setup.rooms["approvals"]
    running = await start_bot(world, config)
    try:
        dossier = await open_dossier(world, "Visit of the Minister of Z")
        proposal, _ = await propose(
            mina, approvals, f"!measure propose {dossier} checks at the door"
        )
        prompt = await prompt_of(world, ap1, proposal)

        await world.alice.react(approvals, prompt.event_id, "✅")
        await world.alice.react(approvals, prompt.event_id, "❌", encrypted=True)
        await mina.react(approvals, prompt.event_id, "✅", encrypted=True)
        assert proposal in await ask(world.admin, approvals, "!approvals")
        await ap1.react(approvals, prompt.event_id, "✅")
        assert "APPROVED" in await decided(world, ap1, prompt)
        await ap1.react(approvals, prompt.event_id, "❌")
        await ap1.react(approvals, prompt.event_id, "👎")
        await ask(world.admin, approvals, "!approvals")
        await running.stop()

        running = await start_bot(world, config)
        await world.alice.react(approvals, prompt.event_id, "👍")
        await ask(world.admin, approvals, "!approvals")

        notices = thread_notices(world, ap1, prompt)
        told = [next(iter(n.source["content"]["m.mentions"]["user_ids"])) for n in notices]
        assert told == [world.alice.user_id, mina.user_id, ap1.user_id], told
        texts = [body(n) for n in notices]
        assert f"Your ✅ on {proposal} does not count: not an approver" in texts[0]
        assert "four eyes: the proposer's vote never counts" in texts[1]
        assert (
            f"Your ❌ on {proposal} does not count: the proposal is decided already" in (texts[2])
        )
        for text in texts:
            for personal in (dossier, "Minister of Z", "checks at the door"):
                assert personal not in text, text

        rows = await audit(world)
        assert reasons(rows, proposal) == [
            (world.alice.user_id, "not an approver"),
            (world.alice.user_id, "not an approver"),
            (mina.user_id, "four eyes: the proposer's vote never counts"),
            (ap1.user_id, "the proposal is decided already"),
            (ap1.user_id, "the proposal is decided already"),
            (world.alice.user_id, "the proposal is decided already"),
        ]
        assert not [
            r for r in rows if r["actor"] == world.setup.user_id and r["action"].startswith("vote.")
        ]
    finally:
        await running.stop()
