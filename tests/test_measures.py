"""Measures and their approval through the real workflow and database (SQLite and
PostgreSQL): who counts, four eyes, quorum, rejection, withdrawal, urgency, the lifecycle,
races and the time-driven steps. The end-to-end tests prove the Matrix wiring."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from sqlalchemy import text

from commands import Reply, RoomKey, Severity
from commands.measure_views import decision_announcements
from commands.replies import Notify
from config import Occasion, Role
from storage.db import Database
from tests.support.chat import BRUSSELS, Chat, text_of
from workflow import Policy
from workflow.approvals import Ignored, choice_of
from workflow.model import Choice, ProposalState
from workflow.privacy import Reader
from workflow.schedule import Ending, Nudge

LIAISON = "@lia:aegis.test"
CHIEF = "@chief:aegis.test"  # liaison and admin: may propose urgently
BOTH = "@both:aegis.test"  # liaison and approver: four eyes must still hold
MINA, MARC = "@mina:aegis.test", "@marc:aegis.test"
POLICE = "@paul:aegis.test"
ANALYST = "@ana:aegis.test"
BOT = "@aegis:aegis.test"
APPROVERS = [f"@approver{n}:aegis.test" for n in range(20)]


def make_chat(db: Database, quorum: int = 1) -> Chat:
    roles: dict[str, set[Role]] = {
        LIAISON: {Role.LIAISON},
        CHIEF: {Role.LIAISON, Role.ADMIN},
        BOTH: {Role.LIAISON, Role.APPROVER},
        MINA: {Role.APPROVER},
        MARC: {Role.APPROVER},
        POLICE: {Role.POLICE},
        ANALYST: {Role.ANALYST},
    }
    roles.update({user: {Role.APPROVER} for user in APPROVERS})
    return Chat(db, roles, policy=Policy(timezone=BRUSSELS, quorum=quorum))


@pytest.fixture
def chat(database: Database) -> Chat:
    return make_chat(database)


async def dossier(chat: Chat) -> str:
    reply = await chat.say(LIAISON, '!dossier open person "Visit of the President"')
    ref = reply.title.removeprefix("Opened ")
    await chat.say(ANALYST, f"!threat log {ref} level=3 source=OCAD credible threat")
    return ref


async def propose(chat: Chat, ref: str, who: str = LIAISON, extra: str = "") -> Reply:
    reply = await chat.say(
        who, f"!measure propose {ref} close-protection {extra} visit programme".strip()
    )
    assert reply.severity is Severity.SUCCESS, text_of(reply)
    proposal = reply.title.split()[1].rstrip(":")
    await chat.posted(f"prompt:{proposal}", f"$prompt-{proposal}")
    return reply


async def audit_actions(db: Database) -> list[tuple[str, str, str]]:
    async with db.transaction() as s:
        rows = await s.execute(text("SELECT actor, action, target FROM audit_log ORDER BY seq"))
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def state_of(chat: Chat, measure: str) -> str:
    return dict((await chat.say(POLICE, f"!measure show {measure}")).fields)["State"]


def test_emoji_variants_count_as_the_same_vote() -> None:
    for key in ("✅", "✔️", "✔", "☑️", "👍", "👍🏽", "👍🏿"):
        assert choice_of(key) is Choice.APPROVE, key
    for key in ("❌", "✖️", "👎", "👎🏻"):
        assert choice_of(key) is Choice.REJECT, key
    for key in ("🎉", "👀", "", "ok"):
        assert choice_of(key) is None, key


async def test_proposal_posts_a_complete_prompt_with_the_bots_reactions(chat: Chat) -> None:
    ref = await dossier(chat)
    reply = await propose(chat, ref, extra='end="in 10 days" executor=DAB')
    assert reply.title == (
        "Proposed P-1: new M-1: close-protection — "
        "close protection (federal police, protection directorate)"
    )
    [prompt] = reply.also
    assert prompt.room is RoomKey.APPROVALS and prompt.ref == "prompt:P-1"
    assert prompt.reactions == ("✅", "❌")
    # The approvers must act: they are mentioned, never the proposer, who may not vote.
    assert prompt.notify == Notify(Occasion.APPROVAL, besides=(LIAISON,))
    fields = dict(prompt.reply.fields)
    assert fields["Dossier"].startswith(f"{ref} — Visit of the President")
    assert fields["Threat level"].startswith("3 SERIOUS / ERNSTIG / GRAVE (OCAD, 0m old")
    assert "→" in fields["Period"] and fields["Executor"] == "DAB"
    assert fields["Proposed by"].startswith(LIAISON) and fields["Reason"] == "visit programme"
    assert await state_of(chat, "M-1") == "proposed"


async def test_only_approvers_count_and_never_the_proposer(chat: Chat, database: Database) -> None:
    ref = await dossier(chat)
    await propose(chat, ref, who=BOTH)
    prompt = "$prompt-P-1"
    assert (await chat.react(BOT, prompt, own=True)).ignored is Ignored.OWN
    assert (await chat.react(POLICE, prompt)).ignored is Ignored.NOT_APPROVER
    assert (await chat.react(BOTH, prompt)).ignored is Ignored.PROPOSER
    assert await state_of(chat, "M-1") == "proposed"
    result = await chat.react(MINA, prompt, "👍🏽")
    assert result.decision is not None and result.decision.outcome is ProposalState.APPROVED
    assert await state_of(chat, "M-1") == "active"
    late = await chat.react(MARC, prompt, "❌")
    assert late.ignored is Ignored.DECIDED and await state_of(chat, "M-1") == "active"
    # The bot's own pre-set ✅ is no vote and leaves no trace; the three others are audited.
    ignored = [(u, a) for u, a, _ in await audit_actions(database) if a == "vote.ignored"]
    assert ignored == [(u, "vote.ignored") for u in (POLICE, BOTH, MARC)]
    assert (MINA, "proposal.approved", "P-1") in await audit_actions(database)


async def test_a_reaction_on_any_other_message_is_ignored(chat: Chat) -> None:
    await propose(chat, await dossier(chat))
    assert (await chat.react(MINA, "$some-other-message")).ignored is Ignored.NOT_A_PROMPT
    assert (await chat.react(MINA, "$prompt-P-1", "🎉")).ignored is Ignored.NOT_A_VOTE
    assert await state_of(chat, "M-1") == "proposed"


async def test_quorum_needs_distinct_approvers(database: Database) -> None:
    chat = make_chat(database, quorum=2)
    await propose(chat, await dossier(chat))
    assert (await chat.react(MINA, "$prompt-P-1", "✅")).decision is None
    assert (await chat.react(MINA, "$prompt-P-1", "👍")).decision is None  # same person again
    decided = await chat.react(MARC, "$prompt-P-1", "✔️")
    assert decided.decision is not None and decided.decision.by == f"{MINA}, {MARC}"


async def test_decision_announcements_edit_the_prompt_and_order_the_police(chat: Chat) -> None:
    await propose(chat, await dossier(chat))
    decision = (await chat.react(MINA, "$prompt-P-1")).decision
    assert decision is not None
    from commands.measure_views import decision_announcements

    edited, to_proposer, to_coordination, order = decision_announcements(decision, BRUSSELS)
    assert edited.replaces == "prompt:P-1" and edited.reply.title.startswith("APPROVED: P-1")
    assert dict(edited.reply.fields)["Decided"].startswith(f"APPROVED by {MINA}")
    assert to_proposer.room == "!coordination" and to_coordination.room is RoomKey.COORDINATION
    assert (
        order.room is RoomKey.OPERATIONS and order.ref == "order:M-1" and order.reactions == ("✅",)
    )
    assert order.reply.title.startswith("EXECUTION ORDER M-1")


async def test_reject_and_withdrawn_votes(database: Database) -> None:
    chat = make_chat(database, quorum=2)
    ref = await dossier(chat)
    await propose(chat, ref)
    await chat.react(MINA, "$prompt-P-1", "✅", event_id="$mina-yes")
    await chat.unreact(MINA, "$mina-yes")
    assert (await chat.react(MARC, "$prompt-P-1")).decision is None  # one standing vote of two
    rejected = await chat.react(MINA, "$prompt-P-1", "❌")
    assert rejected.decision is not None and rejected.decision.outcome is ProposalState.REJECTED
    assert await state_of(chat, "M-1") == "rejected"
    await chat.unreact(MINA, "$mina-yes")  # after the decision: changes nothing
    assert await state_of(chat, "M-1") == "rejected"
    assert "M-1 · " not in text_of(await chat.say(POLICE, "!measure list status=active"))


async def test_only_the_proposer_withdraws_a_pending_proposal(
    chat: Chat, database: Database
) -> None:
    await propose(chat, await dossier(chat))
    refused = await chat.say(CHIEF, "!proposal withdraw P-1")
    assert refused.severity is Severity.ERROR and "only the proposer" in refused.title
    assert (CHIEF, "refused:proposal withdraw", "P-1") in await audit_actions(database)
    withdrawn = await chat.say(LIAISON, "!proposal withdraw P-1")
    assert withdrawn.severity is Severity.SUCCESS
    assert withdrawn.also[0].replaces == "prompt:P-1"
    assert await state_of(chat, "M-1") == "withdrawn"
    assert "withdrawn already" in (await chat.say(LIAISON, "!proposal withdraw P-1")).title
    assert (await chat.react(MINA, "$prompt-P-1")).ignored is Ignored.DECIDED


async def test_urgent_measures_are_provisional_and_a_rejection_stops_them(chat: Chat) -> None:
    ref = await dossier(chat)
    refused = await chat.say(
        LIAISON, f"!measure propose {ref} patrol urgent=yes threats this morning"
    )
    assert refused.severity is Severity.ERROR and "admin" in refused.title
    reply = await propose(chat, ref, who=CHIEF, extra="urgent=yes")
    rooms = [a.room for a in reply.also]
    assert rooms == [RoomKey.APPROVALS, RoomKey.OPERATIONS]
    assert reply.also[1].reply.title.startswith("PROVISIONAL ORDER")
    assert reply.also[1].notify == Notify(Occasion.ORDER)  # the police must act at once
    assert await state_of(chat, "M-1") == "provisional"
    decision = (await chat.react(MINA, "$prompt-P-1", "❌")).decision
    assert decision is not None
    from commands.measure_views import decision_announcements

    stop = decision_announcements(decision, BRUSSELS)[-1]
    assert stop.room is RoomKey.OPERATIONS and stop.reply.title.startswith("STOP")
    assert await state_of(chat, "M-1") == "ended"


async def test_bad_proposals_are_refused_with_the_reason(chat: Chat, database: Database) -> None:
    ref = await dossier(chat)
    past = await chat.say(LIAISON, f"!measure propose {ref} patrol end=yesterday x")
    assert "end: is in the past" in past.title
    await chat.say(LIAISON, f"!dossier close {ref} done")
    closed = await chat.say(LIAISON, f"!measure propose {ref} patrol x")
    assert "closed" in closed.title
    unknown = await chat.say(LIAISON, f"!measure propose {ref} helicopter x")
    assert unknown.severity is Severity.ERROR and "close-protection" in text_of(unknown)
    async with database.transaction() as s:
        assert (await s.execute(text("SELECT count(*) FROM measures"))).scalar_one() == 0


async def test_lifecycle_changes_apply_only_once_approved(chat: Chat) -> None:
    ref = await dossier(chat)
    await propose(chat, ref, extra='end="in 10 days"')
    not_active = await chat.say(LIAISON, '!measure extend M-1 end="in 20 days" longer visit')
    assert "only a measure in force" in not_active.title
    await chat.react(MINA, "$prompt-P-1")

    async def decide(command: str, proposal: str) -> dict[str, str]:
        reply = await chat.say(LIAISON, command)
        assert reply.severity is Severity.SUCCESS, text_of(reply)
        before = dict((await chat.say(POLICE, "!measure show M-1")).fields)
        await chat.posted(f"prompt:{proposal}", f"$prompt-{proposal}")
        await chat.react(MINA, f"$prompt-{proposal}")
        after = dict((await chat.say(POLICE, "!measure show M-1")).fields)
        assert before != after, command
        return after

    old_end = dict((await chat.say(POLICE, "!measure show M-1")).fields)["Period"]
    assert "past" in (await chat.say(LIAISON, "!measure extend M-1 end=yesterday x")).title
    after = await decide('!measure extend M-1 end="in 20 days" the visit is prolonged', "P-2")
    assert after["Period"] != old_end
    after = await decide('!measure limit M-1 "daytime only" threat decreased', "P-3")
    assert after["Details"].endswith("[limited: daytime only]")
    after = await decide('!measure maintain M-1 review="in 30 days" unchanged threat', "P-4")
    assert after["Review"] != "—"
    await chat.say(LIAISON, "!measure end M-1 visit over")
    twice = (await chat.say(LIAISON, "!measure end M-1 again")).title
    assert twice.startswith(f"M-1 already has P-5 (end, by {LIAISON}) pending")
    assert twice.endswith("(!proposal withdraw P-5)")
    await chat.posted("prompt:P-5", "$prompt-P-5")
    await chat.react(MINA, "$prompt-P-5")
    assert await state_of(chat, "M-1") == "ended"


async def test_an_approved_measure_that_starts_later_reads_so_everywhere(chat: Chat) -> None:
    ref = await dossier(chat)  # now: Wed 25 Nov 2026 10:00 in Brussels
    await propose(chat, ref, extra='start="8 december" end="2026-12-20 18:00"')
    decided = await chat.react(MINA, "$prompt-P-1")
    assert decided.decision is not None
    starts = "approved, starts Tue 08 Dec 2026 00:00"
    _, notice, *_ = decision_announcements(decided.decision, BRUSSELS)
    assert dict(notice.reply.fields)["Measure is now"] == starts
    assert await state_of(chat, "M-1") == starts
    listed = await chat.say(POLICE, "!measure list")
    assert listed.title == "1 measure"
    assert listed.lines == (
        f"M-1 · {ref} · close-protection · {starts} · "
        "Tue 08 Dec 2026 00:00 → Sun 20 Dec 2026 18:00 · not acknowledged",
    )
    monthly = text_of(await chat.say(POLICE, "!agenda monthly"))
    assert "Ambassades review — November 2026, 0 measures in force" in monthly
    assert "Approved, not started yet (1)" in monthly and starts in monthly
    daily = text_of(await chat.say(POLICE, "!agenda daily"))
    assert f"M-1 close-protection for {ref} Visit of the President: {starts}" in daily
    chat.advance(days=13)  # Tue 08 Dec 2026 10:00: in force
    assert await state_of(chat, "M-1") == "active"
    monthly = text_of(await chat.say(POLICE, "!agenda monthly"))
    assert "Ambassades review — December 2026, 1 measure in force" in monthly
    assert "M-1 close-protection [active]" in monthly and "not started" not in monthly


async def test_a_change_reads_in_local_time_never_as_an_iso_instant(chat: Chat) -> None:
    ref = await dossier(chat)
    await propose(chat, ref, extra='end="2026-12-08 11:00"')
    await chat.react(MINA, "$prompt-P-1")
    reply = await chat.say(LIAISON, '!measure extend M-1 end="2026-12-20 12:00" longer visit')
    extend = "extend M-1 to end Sun 20 Dec 2026 12:00 (close-protection)"
    assert reply.title == f"Proposed P-2: {extend}"
    [prompt] = reply.also
    assert prompt.reply.title == f"Approval needed: P-2 — {extend}"
    waiting = await chat.say(MINA, "!approvals")
    assert waiting.title == "1 proposal waiting" and extend in waiting.lines[0]
    await chat.posted("prompt:P-2", "$prompt-P-2")
    await chat.react(MINA, "$prompt-P-2")
    reply = await chat.say(LIAISON, '!measure maintain M-1 review="31 december" unchanged')
    assert reply.title == (
        "Proposed P-3: maintain M-1, next review Thu 31 Dec 2026 end of day (close-protection)"
    )
    shown = await chat.say(POLICE, "!measure show M-1")
    assert shown.lines[1].startswith(f"P-2 extend by {LIAISON}")
    assert shown.lines[1].endswith(" — end Sun 20 Dec 2026 12:00")
    assert shown.lines[2].startswith(f"P-3 maintain by {LIAISON}")
    assert shown.lines[2].endswith("— pending — review Thu 31 Dec 2026 end of day")
    for text_shown in (text_of(reply), text_of(prompt.reply), text_of(shown)):
        assert "2026-12-" not in text_shown and "T1" not in text_shown


async def test_a_dossier_with_measures_open_cannot_be_closed_and_says_how_to_settle_each(
    chat: Chat,
) -> None:
    ref = await dossier(chat)
    await propose(chat, ref)  # M-1, approved below: active
    await chat.react(MINA, "$prompt-P-1")
    await propose(chat, ref, extra="start=2026-12-08")  # M-2, approved below: starts later
    await chat.react(MINA, "$prompt-P-2")
    await propose(chat, ref)  # M-3: proposed
    await chat.say(LIAISON, "!measure end M-1 visit over")  # P-4: pending
    refused = await chat.say(LIAISON, f"!dossier close {ref} visit over")
    assert refused.severity is Severity.ERROR
    assert refused.title == (
        f"{ref} cannot be closed while measures are in force or pending; settle each:"
    )
    assert refused.lines == (
        "M-1 close-protection (active): P-4 (end) is pending; it is decided by the approvers, "
        f"or withdrawn by {LIAISON} with !proposal withdraw P-4",
        "M-2 close-protection (approved, starts Tue 08 Dec 2026 00:00): "
        "end it with !measure end M-2 <reason>",
        "M-3 close-protection (proposed): P-3 (create) is pending; it is decided by the "
        f"approvers, or withdrawn by {LIAISON} with !proposal withdraw P-3",
    )
    assert "closed" not in dict((await chat.say(POLICE, f"!dossier show {ref}")).fields)["Status"]
    await chat.posted("prompt:P-4", "$prompt-P-4")
    await chat.react(MINA, "$prompt-P-4")
    await chat.say(LIAISON, "!proposal withdraw P-3")
    await chat.say(LIAISON, "!measure end M-2 not needed")
    await chat.posted("prompt:P-5", "$prompt-P-5")
    await chat.react(MINA, "$prompt-P-5")
    closed = await chat.say(LIAISON, f"!dossier close {ref} visit over")
    assert closed.severity is Severity.SUCCESS, text_of(closed)


async def test_twenty_racing_approvals_make_one_decision(database: Database) -> None:
    chat = make_chat(database, quorum=1)
    await propose(chat, await dossier(chat))
    results = await asyncio.gather(*(chat.react(a, "$prompt-P-1") for a in APPROVERS))
    assert sum(r.decision is not None for r in results) == 1
    approved = [a for _, a, _ in await audit_actions(database) if a == "proposal.approved"]
    assert approved == ["proposal.approved"]


async def test_police_acknowledge_by_reaction_or_command(chat: Chat) -> None:
    ref = await dossier(chat)
    for n in (1, 2):
        await propose(chat, ref)
        await chat.react(MINA, f"$prompt-P-{n}")
        await chat.posted(f"order:M-{n}", f"$order-M-{n}", "!operations")
    ops = "!operations"
    assert (await chat.react(MINA, "$order-M-1", room=ops)).ignored is Ignored.NOT_POLICE
    acked = await chat.react(POLICE, "$order-M-1", room=ops)
    assert acked.acknowledged is not None
    assert acked.acknowledged.measure.acknowledged_by == POLICE
    assert (await chat.react(POLICE, "$order-M-1", room=ops)).acknowledged is None  # once
    by_command = await chat.say(POLICE, "!measure ack M-2")
    assert by_command.severity is Severity.SUCCESS
    # The order itself is edited to show it is handled, in local time; coordination is told.
    edited, told = by_command.also
    assert edited.room is RoomKey.OPERATIONS and edited.replaces == "order:M-2"
    assert edited.reply.lines == (f"Acknowledged by {POLICE} at Wed 25 Nov 2026 10:00",)
    assert edited.brief is not None and edited.brief.lines[-1] == edited.reply.lines[0]
    assert edited.reply.title.startswith("EXECUTION ORDER M-2") and edited.notify is None
    assert told.room is RoomKey.COORDINATION and told.reply.links[0].ref == "order:M-2"
    assert "already" in (await chat.say(POLICE, "!measure ack M-2")).title
    assert "police" in (await chat.say(LIAISON, "!measure ack M-2")).title
    assert dict((await chat.say(POLICE, "!measure show M-1")).fields)["Acknowledged"].startswith(
        POLICE
    )


async def test_first_thread_rationale_is_kept_with_the_decision(database: Database) -> None:
    chat = make_chat(database, quorum=2)
    await propose(chat, await dossier(chat))
    assert not await chat.rationale(POLICE, "$prompt-P-1", "not mine")
    await chat.react(MINA, "$prompt-P-1")
    assert await chat.rationale(MINA, "$prompt-P-1", "threat is credible")
    decision = (await chat.react(MARC, "$prompt-P-1")).decision
    assert decision is not None and decision.rationale == "threat is credible"
    assert not await chat.rationale(MARC, "$prompt-P-1", "second opinion")  # the first only


async def test_rationale_only_from_an_approver_who_voted_and_is_not_the_proposer(
    database: Database,
) -> None:
    """Words kept as the reason of a decision come from someone who took part in it: not
    a bystander, not an approver who has not voted (or withdrew), not the proposer (who
    holds approver here), not from another room, not with a relation hidden in ciphertext."""
    chat = make_chat(database, quorum=2)
    await propose(chat, await dossier(chat), who=BOTH)
    prompt = "$prompt-P-1"
    assert not await chat.rationale(MINA, prompt, "before voting")
    await chat.react(BOTH, prompt)  # the proposer's own vote: does not count
    assert not await chat.rationale(BOTH, prompt, "my own proposal is fine")
    await chat.react(MINA, prompt, event_id="$mina-yes")
    await chat.unreact(MINA, "$mina-yes")
    assert not await chat.rationale(MINA, prompt, "withdrawn, then explained")
    await chat.react(MINA, prompt)
    assert not await chat.rationale(MINA, prompt, "from elsewhere", room="!coordination")
    assert not await chat.rationale(MINA, prompt, "sealed", relation_matches=False)
    assert not await chat.rationale(ANALYST, prompt, "I agree")
    assert await chat.rationale(MINA, prompt, "credible threat")
    decision = (await chat.react(MARC, prompt)).decision
    assert decision is not None and decision.rationale == "credible threat"
    assert (MINA, "proposal.rationale", "P-1") in await audit_actions(database)


async def test_a_vote_counts_only_in_the_prompts_own_room_with_its_relation_in_clear(
    chat: Chat, database: Database
) -> None:
    """A reaction seen in another room (an encrypted one can name the prompt's event ID
    inside its ciphertext) or whose encrypted relation is not the one in clear is ignored
    and audited, with no feedback; the same approver's ✅ in the room then decides."""
    await propose(chat, await dossier(chat))
    elsewhere = await chat.react(MINA, "$prompt-P-1", room="!coordination")
    assert elsewhere.ignored is Ignored.ELSEWHERE and elsewhere.feedback is None
    sealed = await chat.react(MINA, "$prompt-P-1", relation_matches=False)
    assert sealed.ignored is Ignored.SEALED and sealed.feedback is None
    assert await state_of(chat, "M-1") == "proposed"
    # An order's acknowledgement, too, counts only in the order's room.
    assert (await chat.react(MINA, "$prompt-P-1")).decision is not None
    await chat.posted("order:M-1", "$order-M-1", room="!operations")
    assert (await chat.react(POLICE, "$order-M-1")).ignored is Ignored.ELSEWHERE
    assert (await chat.react(POLICE, "$order-M-1", room="!operations")).acknowledged
    async with database.transaction() as s:
        rows = await s.execute(
            text("SELECT actor, target, detail FROM audit_log WHERE action = 'vote.ignored'")
        )
        reasons = [(r[0], r[1], json.loads(r[2])["reason"]) for r in rows]
    assert reasons == [
        (MINA, "P-1", "not in the prompt's room"),
        (MINA, "P-1", "the relation in clear differs from the encrypted one"),
        (POLICE, "M-1", "not in the prompt's room"),
    ]


async def test_only_the_voters_own_redaction_withdraws_a_vote(
    database: Database,
) -> None:
    """A room moderator (or anyone whose redaction the homeserver accepts) cannot take an
    approver's vote away: the redaction is audited and the vote stays; nor does the voter's
    redaction sent from another room count. The voter's own redaction withdraws it."""
    chat = make_chat(database, quorum=2)
    await propose(chat, await dossier(chat))
    await chat.react(MINA, "$prompt-P-1", event_id="$mina-yes")
    await chat.unreact(CHIEF, "$mina-yes")
    await chat.unreact(MINA, "$mina-yes", room="!coordination")
    async with chat.workflow() as wf:
        assert [v.voter for v in await wf.store.measures.votes(1)] == [MINA]
    decided = await chat.react(MARC, "$prompt-P-1")
    assert decided.decision is not None and decided.decision.by == f"{MINA}, {MARC}"

    await propose(chat, await dossier(chat))
    await chat.react(MINA, "$prompt-P-2", event_id="$mina-again")
    await chat.unreact(MINA, "$mina-again")
    assert (await chat.react(MARC, "$prompt-P-2")).decision is None  # one standing vote
    async with database.transaction() as s:
        rows = await s.execute(
            text(
                "SELECT actor, action, target, detail FROM audit_log"
                " WHERE action LIKE 'vote.redaction%' OR action = 'vote.withdrawn'"
            )
        )
        trail = [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]
    assert trail == [
        (
            CHIEF,
            "vote.redaction_ignored",
            "P-1",
            {"reason": "redacted by someone other than the voter", "voter": MINA},
        ),
        (
            MINA,
            "vote.redaction_ignored",
            "P-1",
            {"reason": "the redaction is not in the prompt's room", "voter": MINA},
        ),
        (MINA, "vote.withdrawn", "P-2", {}),
    ]


async def test_a_vote_that_does_not_count_is_told_once_per_user_and_prompt(
    database: Database,
) -> None:
    """The proposer's own, a user without the role, a late vote: one notice each, in the
    prompt's thread, IDs only; a second such vote by the same user on the same prompt is
    not answered again (the record is in the database, so not after a restart either)."""
    chat = make_chat(database, quorum=1)
    ref = await dossier(chat)
    await propose(chat, ref, who=BOTH)
    prompt = "$prompt-P-1"
    assert (await chat.react(BOT, prompt, own=True)).feedback is None
    proposer = await chat.react(BOTH, prompt, "👍")
    role = await chat.react(ANALYST, prompt, "❌")
    assert (await chat.react(ANALYST, prompt, "✅")).feedback is None  # told once already
    assert (await chat.react(BOTH, prompt)).feedback is None
    assert (await chat.react(MINA, prompt)).decision is not None
    late = await chat.react(MARC, prompt, "✖️")
    assert (await chat.react(MARC, prompt)).feedback is None
    told = [proposer.feedback, role.feedback, late.feedback]
    assert [(f.voter, f.why) for f in told if f] == [
        (BOTH, Ignored.PROPOSER),
        (ANALYST, Ignored.NOT_APPROVER),
        (MARC, Ignored.DECIDED),
    ]
    from commands.measure_views import reacted

    [notice] = reacted(role, BRUSSELS)
    assert notice.room == "!approvals" and notice.thread == "prompt:P-1"
    assert notice.mentions == (ANALYST,)
    assert notice.reply.title == "Your ❌ on P-1 does not count: not an approver"
    shown = text_of(notice.reply)
    for personal in (ref, "Visit of the President", "close-protection", "visit programme"):
        assert personal not in shown

    # A sector warning's prompt follows the same rules, its feedback too.
    await chat.say(LIAISON, '!ew warn sector=all "drones over sites"')
    await chat.posted("warning:W-1", "$w1")
    assert (await chat.react(BOT, "$w1", own=True)).feedback is None
    first = await chat.react(ANALYST, "$w1")
    assert first.feedback is not None and first.feedback.name == "W-1"
    assert (await chat.react(ANALYST, "$w1")).feedback is None
    assert (await chat.react(MINA, "$w1", room="!coordination")).ignored is Ignored.ELSEWHERE
    async with database.transaction() as s:
        told_rows = (await s.execute(text("SELECT ref, user_id FROM vote_feedback"))).all()
    assert sorted(tuple(r) for r in told_rows) == sorted(
        [
            ("prompt:P-1", BOTH),
            ("prompt:P-1", ANALYST),
            ("prompt:P-1", MARC),
            ("warning:W-1", ANALYST),
        ]
    )


async def test_nudges_once_per_interval_then_expiry(chat: Chat, database: Database) -> None:
    await propose(chat, await dossier(chat))
    assert await chat.tick() == []
    chat.advance(hours=4, minutes=1)
    [nudge] = await chat.tick()
    assert isinstance(nudge, Nudge) and MINA in nudge.approvers and LIAISON not in nudge.approvers
    chat.advance(hours=1)
    assert await chat.tick() == []
    chat.advance(hours=3)
    assert [type(s) for s in await chat.tick()] == [Nudge]
    chat.advance(hours=72)
    [expired] = await chat.tick()
    assert expired.outcome is ProposalState.EXPIRED  # type: ignore[union-attr]
    assert await state_of(chat, "M-1") == "expired"
    assert await chat.tick() == []
    assert (await chat.react(MINA, "$prompt-P-1")).ignored is Ignored.DECIDED


async def test_end_warning_comes_before_the_end_and_each_happens_once(
    chat: Chat, database: Database
) -> None:
    # Hours keep the clock time ("in 10 days" would be the end of that day).
    await propose(chat, await dossier(chat), extra='end="in 240 hours"')
    await chat.react(MINA, "$prompt-P-1")
    chat.advance(days=6)
    assert await chat.tick() == []
    chat.advance(days=1, hours=1)
    [warning] = await chat.tick()
    assert isinstance(warning, Ending) and warning.warning
    assert await chat.tick() == []
    chat.advance(days=3)
    [ended] = await chat.tick()
    assert isinstance(ended, Ending) and not ended.warning
    assert await state_of(chat, "M-1") == "ended"
    assert await chat.tick() == []
    again = make_chat(database)  # a second process on the same database
    again.now = chat.now + timedelta(minutes=5)
    assert await again.tick() == []


async def test_a_measure_never_ends_without_its_warning(chat: Chat) -> None:
    """Down through both moments: the warning comes first, the end on a later pass."""
    await propose(chat, await dossier(chat), extra='end="in 2 days"')
    await chat.react(MINA, "$prompt-P-1")
    chat.advance(days=5)
    [first] = await chat.tick()
    assert isinstance(first, Ending) and first.warning
    [second] = await chat.tick()
    assert isinstance(second, Ending) and not second.warning


async def test_two_votes_at_once_that_reach_the_quorum_together_approve(database: Database) -> None:
    for round_ in range(5):
        chat = make_chat(database, quorum=2)
        ref = await dossier(chat)
        reply = await propose(chat, ref)
        proposal = reply.title.split()[1].rstrip(":")
        results = await asyncio.gather(
            chat.react(MINA, f"$prompt-{proposal}", event_id=f"$mina-{round_}"),
            chat.react(MARC, f"$prompt-{proposal}", event_id=f"$marc-{round_}"),
        )
        assert sum(r.decision is not None for r in results) == 1, round_


async def test_the_approvals_listing_reads_each_proposal_with_its_own_dossier_and_threat(
    chat: Chat,
) -> None:
    """Read in bulk: proposals on two dossiers (one with no assessment) keep their own
    measure, dossier and latest threat, oldest first, exactly as read one by one."""
    first = await dossier(chat)
    await chat.say(ANALYST, f"!threat log {first} level=2 source=OCAD lowered")
    bare = (await chat.say(LIAISON, '!dossier open event "Summit"')).title.removeprefix("Opened ")
    await propose(chat, first)
    await propose(chat, bare)
    await propose(chat, first, extra="ends=2027-01-31")
    async with chat.workflow() as wf:
        listed = await wf.measures.pending(Reader(MINA, "$listing", "approvals"))
        one_by_one = [await wf.measures.context(p.proposal) for p in listed]
    assert listed == one_by_one
    assert [p.dossier.ref for p in listed] == [first, bare, first]
    assert [p.latest.level if p.latest else None for p in listed] == [2, None, 2]
    assert len({p.measure.ref for p in listed}) == 3
    reply = await chat.say(MINA, "!approvals")
    assert reply.title == "3 proposals waiting"
    assert [line.split(" · ")[2] for line in reply.lines] == [first, bare, first]
    # Each listing is one read naming the dossiers of the proposals it listed, each once.
    async with chat.db.transaction() as s:
        rows = await s.execute(
            text("SELECT actor, target, detail FROM audit_log WHERE action = 'dossier.read'")
        )
        assert [(a, t, json.loads(d)) for a, t, d in rows.all()] == [
            (MINA, "", {"command": "approvals", "dossiers": [first, bare]}),
            (MINA, "", {"command": "approvals", "dossiers": [first, bare]}),
        ]
