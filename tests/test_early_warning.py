"""Early warning through the real workflow, commands and database (SQLite and PostgreSQL):
correlation, pattern alerts, triage, partners' tokens and rate limit, sector warnings
approved by reaction, and signed webhooks with retries against a real loopback receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web

from bot.render import notice
from bot.webhooks import WebhookPolicy, WebhookSender
from commands import RoomKey, Severity
from commands.early_warning_views import report_posted, warning_decided
from commands.replies import Link, Notify
from config import Occasion, Role
from storage.audit import entries_for
from storage.db import Database
from tests.support.chat import BRUSSELS, START, Chat, text_of
from workflow import Policy
from workflow.approvals import Ignored
from workflow.early_warning import EarlyWarningPolicy, Submitted
from workflow.early_warning_model import (
    Category,
    NewPartner,
    ReportInput,
    ReportStatus,
    Sector,
    WarningState,
    distance_m,
    plate_key,
    site_key,
)
from workflow.early_warning_refs import warning_ref

LIAISON = "@lia:aegis.test"
ANALYST = "@ana:aegis.test"
MINA = "@mina:aegis.test"  # approver
WARDEN = "@warden:aegis.test"  # warning approver only
BOTH = "@both:aegis.test"  # liaison and approver: may not approve own draft
GATE = (50.8466, 4.3528)


def make_chat(db: Database, **ew: object) -> Chat:
    roles = {
        LIAISON: {Role.LIAISON},
        ANALYST: {Role.ANALYST},
        MINA: {Role.APPROVER},
        WARDEN: {Role.WARNING_APPROVER},
        BOTH: {Role.LIAISON, Role.APPROVER},
    }
    policy = Policy(timezone=BRUSSELS, early_warning=EarlyWarningPolicy(**ew))  # type: ignore[arg-type]
    return Chat(db, roles, policy=policy)


@pytest.fixture
def chat(database: Database) -> Chat:
    return make_chat(database)


async def partner(
    chat: Chat, name: str, sector: Sector = Sector.ENERGY, webhook: str | None = None
) -> NewPartner:
    async with chat.workflow() as wf:
        return await wf.early_warning.add_partner("cli:op", name, sector, webhook)


def seen(
    days_ago: float,
    plate: str | None = None,
    where: str = "Gate 2, Rue de la Loi 16",
    at: tuple[float, float] | None = GATE,
    description: str = "grey car waited 20 minutes at the gate",
) -> ReportInput:
    return ReportInput(
        observed_at=START - timedelta(days=days_ago),
        location=where,
        category=Category.VEHICLE,
        description=description,
        lat=at[0] if at else None,
        lon=at[1] if at else None,
        vehicle_plate=plate,
    )


async def submit(
    chat: Chat, new: NewPartner, report: ReportInput, key: str | None = None
) -> Submitted:
    async with chat.workflow() as wf:
        return await wf.early_warning.submit(new.partner, report, key)


# --- normalisation ---------------------------------------------------------------------------


def test_plates_sites_and_distances_normalise() -> None:
    assert plate_key("1-ABC-123") == plate_key("1abc123") == plate_key("1 ABC 123") == "1ABC123"
    assert plate_key(None) == ""
    assert site_key("Gate 2 — Rue de la Loi 16") == site_key("gate 2, rue de la loi 16")
    assert site_key("Grand-Place") == site_key("grand place") != site_key("grand plac")
    assert site_key("Gare de Liège") == site_key("gare de liege")
    assert distance_m(GATE, GATE) == 0
    # 0.001° of latitude is about 111 m.
    assert 105 < distance_m(GATE, (GATE[0] + 0.001, GATE[1])) < 117


# --- the seed's case: one plate at one gate on three days ------------------------------------


async def test_three_partners_same_plate_correlate_and_the_third_raises_a_pattern(
    chat: Chat,
) -> None:
    a, b, c = [await partner(chat, n) for n in ("Elia", "Fluxys", "Engie")]
    first = await submit(chat, a, seen(2, "1-ABC-123"))
    second = await submit(chat, b, seen(1, "1abc123", where="Loi 16 gate", at=None))
    third = await submit(chat, c, seen(0, "1 ABC 123", where="back entrance", at=(50.8470, 4.3530)))
    assert first.correlated == ()
    assert [r.ref for r in second.correlated] == [first.report.ref]
    assert {r.ref for r in third.correlated} == {first.report.ref, second.report.ref}
    assert not second.pattern(3) and third.pattern(3)

    posts = report_posted(third, 3, BRUSSELS)
    assert [p.room for p in posts] == [RoomKey.EARLY_WARNING, RoomKey.COORDINATION]
    post = text_of(posts[0].reply)
    for expected in ("Engie", "energy", "vehicle", "back entrance", "1 ABC 123", "2 related"):
        assert expected in post
    alert = posts[1].reply
    assert alert.severity is Severity.WARNING and "PATTERN ALERT: 3" in alert.title
    assert "3 partners" in alert.title and len(alert.lines) == 3
    assert [p.room for p in report_posted(first, 3, BRUSSELS)] == [RoomKey.EARLY_WARNING]


async def test_correlation_needs_the_window_and_the_radius(database: Database) -> None:
    chat = make_chat(database, window=timedelta(days=14), radius_m=500)
    a, b = await partner(chat, "A"), await partner(chat, "B", Sector.TELECOM)
    base = await submit(chat, a, seen(0, "XYZ-987", where="site one"))
    # Same plate, but three weeks earlier: outside the window.
    old = await submit(chat, b, seen(21, "xyz987", where="elsewhere", at=None))
    # No plate, another name, 450 m away: inside the radius.
    near = await submit(chat, b, seen(1, where="north car park", at=(GATE[0] + 0.00405, GATE[1])))
    # 800 m the other way (so 1,250 m from the car park), another site and plate: unrelated.
    far = await submit(chat, b, seen(1, "QQQ-111", where="depot", at=(GATE[0] - 0.0072, GATE[1])))
    assert old.correlated == ()
    assert [r.ref for r in near.correlated] == [base.report.ref]
    assert far.correlated == ()
    # Same site name, written differently, no coordinates: correlated.
    named = await submit(chat, a, seen(3, where="SITE  one!", at=None))
    assert base.report.ref in {r.ref for r in named.correlated}


async def test_an_idempotency_key_replay_is_the_same_report(chat: Chat) -> None:
    a = await partner(chat, "A")
    once = await submit(chat, a, seen(0, "1-ABC-123"), key="k-1")
    again = await submit(chat, a, seen(0, "1-ABC-123"), key="k-1")
    assert again.duplicate and again.report.ref == once.report.ref
    async with chat.workflow() as wf:
        assert (await wf.early_warning.page(None, 1)).total == 1


# --- partners: tokens, revocation, rate limit -------------------------------------------------


async def test_tokens_are_hashed_checked_rotated_revoked_and_refusals_audited(
    chat: Chat, database: Database
) -> None:
    new = await partner(chat, "Acme")
    assert new.token.startswith("aegis_ew_") and len(new.webhook_secret) == 64
    async with chat.workflow() as wf:
        assert (await wf.early_warning.authenticate(new.token, "10.0.0.1")) == new.partner
        assert await wf.early_warning.authenticate("aegis_ew_wrong", "10.0.0.2") is None
        assert await wf.early_warning.authenticate("", "10.0.0.3") is None
        rotated = await wf.early_warning.rotate("cli:op", new.partner.id, webhook_secret=False)
        assert rotated.webhook_secret == new.webhook_secret
        assert await wf.early_warning.authenticate(new.token, "10.0.0.4") is None
        assert await wf.early_warning.authenticate(rotated.token, "10.0.0.5") is not None
        await wf.early_warning.revoke("cli:op", new.partner.id)
        assert await wf.early_warning.authenticate(rotated.token, "10.0.0.6") is None
    async with database.transaction() as session:
        refused = await entries_for(session, "")
        stored = (
            await session.execute(
                __import__("sqlalchemy").text("SELECT token_hash FROM ew_partners")
            )
        ).scalar_one()
    assert stored == hashlib.sha256(rotated.token.encode()).hexdigest()
    assert rotated.token not in stored
    actors = [e.actor for e in refused if e.action == "refused:intake.auth"]
    assert actors == ["http:10.0.0.2", "http:10.0.0.3", "http:10.0.0.4", "http:10.0.0.6"]


async def test_rate_limit_counts_the_last_hour_per_partner(database: Database) -> None:
    chat = make_chat(database, reports_per_hour=3)
    a, b = await partner(chat, "A"), await partner(chat, "B")
    for minute in range(3):
        await submit(chat, a, seen(0, where=f"site {minute}", at=None))
        chat.advance(minutes=10)
    async with chat.workflow() as wf:
        wait = await wf.early_warning.retry_after(a.partner)
        assert wait == timedelta(minutes=30)  # the first report leaves the window then
        assert await wf.early_warning.retry_after(b.partner) is None
    chat.advance(minutes=30)
    async with chat.workflow() as wf:
        assert await wf.early_warning.retry_after(a.partner) is None


# --- triage in chat ---------------------------------------------------------------------------


async def test_triage_assess_link_close_and_the_partner_sees_its_status(
    chat: Chat, database: Database
) -> None:
    hooked = await partner(chat, "Elia", webhook="http://127.0.0.1:9/hook")
    other = await partner(chat, "Other")
    report = (await submit(chat, hooked, seen(0, "1-ABC-123"))).report
    opened = await chat.say(LIAISON, '!dossier open institution "Elia HQ" category=other')
    dossier = opened.title.removeprefix("Opened ")

    listing = text_of(await chat.say(ANALYST, "!ew list"))
    assert "Early-warning reports (open): 1" in listing and "EW-1" in listing
    refused = await chat.say(ANALYST, "!ew assess EW-1 suspicious")
    assert refused.severity is Severity.ERROR and "role liaison" in refused.title
    bad = await chat.say(LIAISON, "!ew assess EW-1 dangerous")
    assert bad.severity is Severity.ERROR and "benign or suspicious" in text_of(bad)

    assessed = await chat.say(LIAISON, "!ew assess EW-1 suspicious seen at two other sites")
    assert assessed.title == "EW-1 assessed suspicious"
    assert (
        await chat.say(LIAISON, f"!ew link EW-1 {dossier}")
    ).title == f"EW-1 linked to {dossier}"
    timeline = text_of(await chat.say(LIAISON, f"!dossier timeline {dossier}"))
    assert "early-warning: EW-1 from Elia (energy)" in timeline and "1-ABC-123" in timeline
    # When it was seen, as every time people read: local and human.
    assert "plate 1-ABC-123, Wed 25 Nov 2026 10:00: grey car" in timeline, timeline
    shown = text_of(await chat.say(ANALYST, "!ew show EW-1"))
    assert "Status: suspicious" in shown and f"Dossier: {dossier}" in shown
    assert "seen at two other sites" in shown

    closed = await chat.say(LIAISON, "!ew close EW-1 plate belongs to a contractor")
    assert closed.title == "EW-1 closed"
    assert "No early-warning reports (open)" in (await chat.say(ANALYST, "!ew list")).title
    assert "EW-1" in text_of(await chat.say(ANALYST, "!ew list status=closed"))
    again = await chat.say(LIAISON, "!ew close EW-1 twice")
    assert again.severity is Severity.ERROR and "closed already" in text_of(again)

    async with chat.workflow() as wf:
        assert (await wf.early_warning.for_partner(hooked.partner, report.id)).status is (  # type: ignore[union-attr]
            ReportStatus.CLOSED
        )
        assert await wf.early_warning.for_partner(other.partner, report.id) is None
    async with database.transaction() as session:
        from storage.early_warning import EarlyWarningStore

        due = await EarlyWarningStore(session).due_webhooks(chat.now, 50)
    payloads = [hook.payload for hook in due]
    # One notice per status change (the link is internal), none with the partners' notes.
    assert [p["status"] for p in payloads] == ["suspicious", "closed"]
    assert all("note" not in p and p["id"] == "EW-1" for p in payloads)


# --- warnings out, approved by reaction -------------------------------------------------------


async def test_a_sector_warning_needs_an_approver_who_did_not_draft_it(
    chat: Chat, database: Database
) -> None:
    elia = await partner(chat, "Elia", webhook="http://127.0.0.1:9/hook")
    fluxys = await partner(chat, "Fluxys")
    await partner(chat, "Proximus", Sector.TELECOM)
    gone = await partner(chat, "Gone")
    async with chat.workflow() as wf:
        await wf.early_warning.revoke("cli:op", gone.partner.id)
    await submit(chat, elia, seen(0, "1-ABC-123"))

    drafted = await chat.say(BOTH, '!ew warn sector=energy "Car 1-ABC-123 scouts gates" from=EW-1')
    assert drafted.title == "W-1 drafted for energy; waiting for approval"
    [prompt] = drafted.also
    assert prompt.room is RoomKey.APPROVALS and prompt.ref == warning_ref(1)
    assert prompt.reactions == ("✅", "❌")
    bad = await chat.say(LIAISON, '!ew warn sector=space "x"')
    assert bad.severity is Severity.ERROR and "is not one of" in text_of(bad)

    await chat.posted(warning_ref(1), "$prompt")
    assert (await chat.react(BOTH, "$prompt")).ignored is Ignored.PROPOSER
    assert (await chat.react(LIAISON, "$prompt")).ignored is Ignored.NOT_APPROVER
    assert (await chat.react(MINA, "$prompt", key="🎉")).ignored is Ignored.NOT_A_VOTE
    result = await chat.react(WARDEN, "$prompt", key="👍🏽")
    assert result.warning is not None
    decision = result.warning
    assert decision.warning.state is WarningState.APPROVED and decision.warning.decided_by == WARDEN
    assert {p.name for p in decision.recipients} == {"Elia", "Fluxys"}
    assert (await chat.react(MINA, "$prompt")).ignored is Ignored.DECIDED
    # Those who may approve are mentioned, not the drafter; on the decision the prompt is
    # edited, as a measure's is, and the early-warning room told with a link to it.
    assert prompt.notify == Notify(Occasion.SECTOR_WARNING, besides=(BOTH,))
    edited, told = warning_decided(decision, BRUSSELS)
    assert edited.room is RoomKey.APPROVALS and edited.replaces == warning_ref(1)
    assert edited.reply.title == "APPROVED: sector warning W-1 to energy"
    decided = dict(edited.reply.fields)
    assert decided["Decided"] == f"APPROVED by {WARDEN}, Wed 25 Nov 2026 10:00"
    assert decided["Text"] == "Car 1-ABC-123 scouts gates"
    assert edited.brief is not None and "Text" not in dict(edited.brief.fields)
    assert told.room is RoomKey.EARLY_WARNING and told.reply.links == (Link("W-1", warning_ref(1)),)

    deliveries = text_of(await chat.say(ANALYST, "!ew deliveries W-1"))
    assert "W-1 to energy: 0 of 2 received" in deliveries
    assert "Elia (energy): NOT received yet: webhook tried 0 times" in deliveries
    assert "Fluxys (energy): NOT received yet: no webhook, not fetched" in deliveries
    async with chat.workflow() as wf:
        fetched = await wf.early_warning.warnings_for(fluxys.partner)
        assert [w.ref for w in fetched] == ["W-1"] and fetched[
            0
        ].text == "Car 1-ABC-123 scouts gates"
    assert "1 of 2 received" in text_of(await chat.say(ANALYST, "!ew deliveries W-1"))
    async with database.transaction() as session:
        trail = [e.action for e in await entries_for(session, "W-1")]
    assert trail[0] == "warning.drafted" and "warning.approved" in trail
    assert trail.count("vote.ignored") == 3


async def test_one_rejection_stops_a_warning_and_a_withdrawn_vote_no_longer_counts(
    database: Database,
) -> None:
    chat = make_chat(database)
    chat.policy = Policy(timezone=BRUSSELS, quorum=2)
    await partner(chat, "Elia")
    await chat.say(LIAISON, '!ew warn sector=all "drones over sites"')
    await chat.posted(warning_ref(1), "$w1")
    await chat.react(MINA, "$w1", event_id="$mina-yes")
    await chat.unreact(MINA, "$mina-yes")
    pending = await chat.react(WARDEN, "$w1")
    assert pending.warning is None and pending.ignored is None  # one approval of two
    rejected = await chat.react(BOTH, "$w1", key="❌")
    assert rejected.warning is not None and rejected.warning.warning.state is WarningState.REJECTED
    assert rejected.warning.recipients == ()
    assert "has no recipients" in text_of(await chat.say(ANALYST, "!ew deliveries W-1"))


# --- webhooks: signed, retried, recorded ------------------------------------------------------


async def test_webhooks_are_signed_and_retried_until_delivered(
    chat: Chat, database: Database
) -> None:
    received: list[tuple[dict[str, str], bytes]] = []
    failures = {"left": 2}

    async def hook(request: web.Request) -> web.Response:
        if failures["left"]:
            failures["left"] -= 1
            return web.Response(status=503)
        received.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        elia = await partner(chat, "Elia", webhook=f"http://127.0.0.1:{port}/hook")
        dead = await partner(chat, "Dead", webhook="http://127.0.0.1:9/closed")
        await chat.say(LIAISON, '!ew warn sector=energy "check your gates"')
        await chat.posted(warning_ref(1), "$w1")
        assert (await chat.react(MINA, "$w1")).warning is not None

        class Now:
            def now(self) -> datetime:
                return datetime.now(UTC)

        sender = WebhookSender(
            database,
            Now(),
            asyncio.Event(),
            WebhookPolicy(attempts=3, backoff=timedelta(0), timeout=timedelta(seconds=2)),
        )
        async with aiohttp.ClientSession() as http:
            for _ in range(3):
                await sender.deliver_due(http)
            assert await sender.deliver_due(http) == 0  # nothing left to try
    finally:
        await runner.cleanup()

    [(headers, body)] = received
    timestamp, mac = (part.split("=", 1)[1] for part in headers["X-Aegis-Signature"].split(","))
    expected = hmac.new(
        elia.webhook_secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(mac, expected)
    payload = json.loads(body)
    assert headers["X-Aegis-Event"] == "warning" and payload["event"] == "warning"
    assert payload["data"]["id"] == "W-1" and payload["data"]["text"] == "check your gates"
    assert dead.partner.name == "Dead"
    deliveries = text_of(await chat.say(ANALYST, "!ew deliveries W-1"))
    assert "W-1 to energy: 1 of 2 received" in deliveries
    assert "Elia (energy): received by webhook" in deliveries
    assert "Dead (energy): NOT received: webhook failed after 3 tries (ClientConnectorError" in (
        deliveries
    )


# --- nothing a company writes reaches a room unescaped ----------------------------------------


async def test_company_text_is_escaped_in_the_room(chat: Chat) -> None:
    evil = await partner(chat, "<b>Evil</b> Corp")
    submitted = await submit(
        chat,
        evil,
        seen(
            0,
            "<i>1</i>",
            where="<img src=x onerror=alert(1)>",
            description="<script>alert('x')</script> & more",
        ),
    )
    [post] = report_posted(submitted, 3, BRUSSELS)
    content = notice(post.reply)
    html = content["formatted_body"]
    for raw in ("<script>", "<img", "<b>Evil", "<i>1"):
        assert raw not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in html
    assert "<script>alert('x')</script>" in content["body"]


async def test_restart_reconciliation_reads_back_warning_prompts(database: Database) -> None:
    """The relations read-back after a restart covers warning prompts too: a vote whose
    reaction is gone from the room is looked up, and its voter's redaction withdraws it
    (someone else's does not); a decided warning is left alone."""
    chat = make_chat(database)
    chat.policy = Policy(timezone=BRUSSELS, quorum=3)
    await chat.say(LIAISON, '!ew warn sector=all "drones over sites"')
    await chat.say(LIAISON, '!ew warn sector=health "second"')
    await chat.posted(warning_ref(1), "$w1")
    await chat.react(MINA, "$w1", event_id="$gone")
    await chat.react(WARDEN, "$w1", event_id="$kept")
    async with chat.workflow() as wf:
        prompts = await wf.approvals.open_prompts()
        assert prompts == [(warning_ref(1), "!approvals", "$w1")]  # W-2's prompt is not out
        assert await wf.approvals.missing_votes(warning_ref(1), {"$kept"}) == ["$gone"]
    await chat.unreact(LIAISON, "$gone")
    async with chat.workflow() as wf:
        assert await wf.approvals.missing_votes(warning_ref(1), {"$kept"}) == ["$gone"]
    await chat.unreact(MINA, "$gone")
    async with chat.workflow() as wf:
        assert await wf.approvals.missing_votes(warning_ref(1), {"$kept"}) == []
        assert [v.voter for v in await wf.store.early_warning.votes(1)] == [WARDEN]
    async with database.transaction() as session:
        trail = [e.action for e in await entries_for(session, "W-1")]
    assert trail[-2:] == ["vote.redaction_ignored", "vote.withdrawn"]


async def test_a_local_time_with_an_offset_comes_back_as_the_same_instant(chat: Chat) -> None:
    a = await partner(chat, "A")
    local = datetime(2026, 11, 24, 22, 30, tzinfo=BRUSSELS)
    sent = await submit(chat, a, replace(seen(0), observed_at=local))
    async with chat.workflow() as wf:
        stored = await wf.early_warning.require(sent.report.id)
    assert stored.input.observed_at == local and stored.input.observed_at.tzinfo is not None
