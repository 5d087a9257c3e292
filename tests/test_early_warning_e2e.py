"""Issue 6's acceptance against the real homeserver and real HTTP on loopback: the seed's
scenario from three companies' reports to a signed sector warning, and reports taken in
while the Matrix side is down (and the bot killed) posted once it is back."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import nio
from aiohttp import web

from tests.conftest import UserFactory
from tests.support.bot_runner import REPO, BotProcess, InProcessBot
from tests.support.homeserver import Homeserver, free_port
from tests.support.matrix_user import MatrixUser, content
from tests.support.world import World

WAIT = 60.0


# ---------------------------------------------------------------------------- helpers


def partner_add(config: Path, name: str, sector: str, webhook: str | None = None) -> dict[str, str]:
    """`aegis partner add`, as an operator runs it: (id, token, webhook secret) from stdout."""
    args = [sys.executable, "-m", "bot", "partner", "add", "-c", str(config), name]
    args += ["--sector", sector] + (["--webhook", webhook] if webhook else [])
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=True).stdout
    token = re.search(r"API token \(shown once, give it to the partner\): (\S+)", out)
    secret = re.search(r"webhook signing secret: (\S+)", out)
    assert token and secret, out
    return {"token": token.group(1), "secret": secret.group(1)}


def report(days_ago: int, plate: str, **extra: Any) -> dict[str, Any]:
    observed = datetime.now(UTC) - timedelta(days=days_ago, minutes=5)
    return {
        "observed_at": observed.isoformat(),
        "location": {
            "address": "Gate 2, Rue de la Loi 16, Brussels",
            "lat": 50.8466,
            "lon": 4.3528,
        },
        "category": "vehicle",
        "description": "grey car stopped at the gate for twenty minutes",
        "vehicle_plate": plate,
        **extra,
    }


async def post_report(
    http: aiohttp.ClientSession, base: str, token: str, body: dict[str, Any]
) -> str:
    async with http.post(
        f"{base}/api/v1/reports", json=body, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        answer = await response.json()
        assert response.status == 201, answer
        return str(answer["id"])


def bot_bodies(world: World, user: MatrixUser, room: str) -> list[str]:
    """The bodies of the bot's messages in the room (notices, decrypted)."""
    return [
        str(content(e)["body"])
        for e in user.events(room)
        if not isinstance(e, nio.MegolmEvent)
        and e.sender == world.setup.user_id
        and "body" in content(e)
    ]


async def ask(user: MatrixUser, room: str, command: str) -> str:
    event_id = await user.say(room, command)
    return str(content(await user.reply_to(room, event_id, timeout=WAIT)).get("body", ""))


class Receiver:
    """A partner's webhook endpoint on loopback; `fail` first answers 503 that many times."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.calls = 0
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        if self.calls <= self.fail:
            return web.Response(status=503)
        self.received.append((dict(request.headers), await request.read()))
        return web.Response(status=200)


@asynccontextmanager
async def receivers(*wanted: Receiver) -> AsyncIterator[None]:
    app = web.Application()
    for n, receiver in enumerate(wanted):
        app.router.add_post(f"/hook{n}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    for n, receiver in enumerate(wanted):
        receiver.url = f"http://127.0.0.1:{port}/hook{n}"
    try:
        yield
    finally:
        await runner.cleanup()


def verified(receiver: Receiver, secret: str) -> dict[str, Any]:
    """The one delivery's JSON, after checking its HMAC-SHA256 signature."""
    [(headers, body)] = receiver.received
    stamp, mac = (p.split("=", 1)[1] for p in headers["X-Aegis-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac, expected)
    return dict(json.loads(body))


async def join_all(world: World, user: MatrixUser) -> None:
    for room in world.setup.rooms.values():
        await world.admin.invite(room, user.user_id)
        await user.join(room)


# ---------------------------------------------------------------------------- 1. the seed


async def test_one_plate_at_one_gate_from_report_to_signed_sector_warning(
    world: World, user_factory: UserFactory
) -> None:
    minister = await user_factory("minister")
    await join_all(world, minister)
    world.setup.roles[minister.user_id] = ["approver"]
    steady, flaky, offline = Receiver(), Receiver(fail=2), Receiver()
    async with receivers(steady, flaky, offline):
        config = world.setup.write_config(early_warning={"webhook_backoff": "1s"})
        elia = partner_add(config, "Elia", "energy", steady.url)
        fluxys = partner_add(config, "Fluxys", "energy", flaky.url)
        engie = partner_add(config, "Engie", "energy")
        proximus = partner_add(config, "Proximus", "telecom", offline.url)
        bot = InProcessBot(config)
        await bot.start()
        try:
            await bot.ready(WAIT)
            ew_room, coordination = world.setup.rooms["early_warning"], world.coordination
            await world.admin.wait_for_member(ew_room, world.setup.user_id)
            assert bot.app.web is not None
            base = f"http://127.0.0.1:{bot.app.web.port}"

            async with aiohttp.ClientSession() as http:
                first = await post_report(
                    http,
                    base,
                    elia["token"],
                    report(2, "1-ABC-123", description="<script>alert(1)</script> waited"),
                )
                second = await post_report(http, base, fluxys["token"], report(1, "1abc123"))
                third = await post_report(http, base, engie["token"], report(0, "1 ABC 123"))
                assert [first, second, third] == ["EW-1", "EW-2", "EW-3"]

                # All three in the early-warning room, the third with a pattern alert.
                posts = {}
                for ref in (first, second, third):
                    posts[ref] = await world.alice.wait_for(
                        ew_room,
                        lambda e, ref=ref: (
                            e.sender == world.setup.user_id
                            and f"{ref}: vehicle reported by" in str(content(e).get("body", ""))
                        ),
                        WAIT,
                    )
                third_body = str(content(posts[third])["body"])
                assert "2 related: EW-1, EW-2" in third_body and "Engie" in third_body
                alert = await world.alice.wait_for(
                    coordination,
                    lambda e: (
                        e.sender == world.setup.user_id
                        and "PATTERN ALERT: 3 correlated" in str(content(e).get("body", ""))
                    ),
                    WAIT,
                )
                assert "latest EW-3" in str(content(alert)["body"])
                html = str(content(posts[first])["formatted_body"])
                assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html

                # Triage: suspicious, linked to a dossier.
                assert "EW-3 assessed suspicious" in await ask(
                    world.alice, ew_room, "!ew assess EW-3 suspicious same car at three sites"
                )
                opened = await ask(
                    world.alice, coordination, '!dossier open institution "Energy sites"'
                )
                dossier = re.search(r"D-\d{4}-\d{4}", opened)
                assert dossier, opened
                assert f"EW-3 linked to {dossier.group()}" in await ask(
                    world.alice, ew_room, f"!ew link EW-3 {dossier.group()}"
                )
                async with http.get(
                    f"{base}/api/v1/reports/EW-3",
                    headers={"Authorization": f"Bearer {engie['token']}"},
                ) as response:
                    assert response.status == 200
                    assert (await response.json())["status"] == "suspicious"

                # The warning, approved by reaction.
                drafted = await ask(
                    world.alice,
                    ew_room,
                    '!ew warn sector=energy "Car 1-ABC-123 scouts company gates" from=EW-3',
                )
                assert "W-1 drafted for energy" in drafted, drafted
                approvals = world.setup.rooms["approvals"]
                prompt = await minister.wait_for(
                    approvals,
                    lambda e: (
                        e.sender == world.setup.user_id
                        and "Approve sector warning W-1 to energy"
                        in str(content(e).get("body", ""))
                    ),
                    WAIT,
                )
                # Those who may approve it are mentioned; the drafter is not.
                mentioned = content(prompt)["m.mentions"]["user_ids"]
                assert minister.user_id in mentioned and world.alice.user_id not in mentioned
                await minister.react(approvals, prompt.event_id, "✅", encrypted=True)
                await world.alice.wait_for(
                    ew_room,
                    lambda e: (
                        e.sender == world.setup.user_id
                        and "W-1 approved by" in str(content(e).get("body", ""))
                    ),
                    WAIT,
                )
                # The prompt is edited to its decided form, as a measure's prompt is.
                edit = await minister.wait_for(
                    approvals,
                    lambda e: (
                        e.sender == world.setup.user_id
                        and (content(e).get("m.relates_to") or {})
                        == {"rel_type": "m.replace", "event_id": prompt.event_id}
                    ),
                    WAIT,
                )
                decided = str(content(edit)["m.new_content"]["body"])
                assert decided.startswith("✅ APPROVED: sector warning W-1 to energy"), decided
                assert f"Decided: APPROVED by {minister.user_id}, " in decided, decided

                # Signed deliveries; the flaky receiver gets it on the third try.
                for _ in range(int(WAIT * 10)):
                    if steady.received and flaky.received:
                        break
                    await asyncio.sleep(0.1)
                for receiver, secret in ((steady, elia["secret"]), (flaky, fluxys["secret"])):
                    delivered = verified(receiver, secret)
                    assert delivered["event"] == "warning"
                    assert delivered["data"]["text"] == "Car 1-ABC-123 scouts company gates"
                assert flaky.calls == 3 and steady.calls == 1
                assert offline.calls == 0  # telecom is not warned

                async with http.get(
                    f"{base}/api/v1/warnings", headers={"Authorization": f"Bearer {engie['token']}"}
                ) as response:
                    warnings = await response.json()
                    assert response.status == 200
                assert [w["id"] for w in warnings["warnings"]] == ["W-1"]
                async with http.get(
                    f"{base}/api/v1/warnings",
                    headers={"Authorization": f"Bearer {proximus['token']}"},
                ) as response:
                    assert (await response.json())["warnings"] == []

            deliveries = await ask(world.alice, ew_room, "!ew deliveries W-1")
            assert "W-1 to energy: 3 of 3 received" in deliveries, deliveries
            assert "Elia (energy): received by webhook" in deliveries
            assert "Fluxys (energy): received by webhook" in deliveries
            assert "Engie (energy): fetched" in deliveries
            assert "Proximus" not in deliveries
            # Each report was posted exactly once.
            bodies = bot_bodies(world, world.alice, ew_room)
            for ref in (first, second, third):
                assert sum(f"{ref}: vehicle reported by" in b for b in bodies) == 1
        finally:
            await bot.stop()


# ---------------------------------------------------------------------------- 4. restart


async def test_reports_taken_in_while_matrix_is_down_are_posted_once(
    world: World, homeserver: Homeserver, tmp_path: Path
) -> None:
    port = free_port()
    config = world.setup.write_config(http={"listen": f"127.0.0.1:{port}"})
    acme = partner_add(config, "Acme", "chemicals")
    base = f"http://127.0.0.1:{port}"
    ew_room = world.setup.rooms["early_warning"]
    bot = BotProcess(config, tmp_path / "bot.log")
    bot.start()
    try:
        await world.admin.wait_for_member(ew_room, world.setup.user_id, WAIT)
        async with aiohttp.ClientSession() as http:
            for _ in range(int(WAIT * 10)):
                try:
                    async with http.get(f"{base}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            await asyncio.to_thread(homeserver.stop)
            try:
                refs = [
                    await post_report(
                        http,
                        base,
                        acme["token"],
                        report(0, f"PLATE-{n}", location={"address": f"site {n}"}),
                    )
                    for n in range(3)
                ]
                bot.kill()  # and the bot dies before Matrix is back
            finally:
                await asyncio.to_thread(homeserver.start)
        bot.start()
        for ref in refs:
            await world.alice.wait_for(
                ew_room,
                lambda e, ref=ref: (
                    e.sender == world.setup.user_id
                    and f"{ref}: vehicle reported by Acme" in str(content(e).get("body", ""))
                ),
                WAIT * 2,
            )
        # A barrier: the bot answers in this room only after everything before it.
        assert "pong" in (await ask(world.alice, ew_room, "!ping")).lower()
        bodies = bot_bodies(world, world.alice, ew_room)
        for ref in refs:
            assert sum(f"{ref}: vehicle reported by" in b for b in bodies) == 1, bodies
    finally:
        bot.kill()
