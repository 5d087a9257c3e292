"""Health, readiness, metrics and structured logs: the endpoints on a real database (SQLite
and PostgreSQL), the counters fed by the real pipeline, scheduler and sender, and one scrape
of a running bot against the real homeserver whose command counters match what was sent."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from nio import AsyncClient, RoomSendError, RoomSendResponse
from prometheus_client.parser import text_string_to_metric_families

from bot.backoff import Backoff
from bot.health import Health, SyncStatus
from bot.logs import JsonFormatter, TextFormatter
from bot.metrics import Metrics
from bot.pipeline import _ctx
from bot.scheduler import Scheduler
from bot.sender import Sender
from bot.web import WebServer
from storage import outbox
from storage.db import Database
from tests.support.chat import BRUSSELS
from tests.support.pipeline import FixedClock
from tests.support.world import World
from tests.test_measures import LIAISON, dossier, make_chat, propose
from tests.test_meetings import MEETING, WEEKLY
from tests.test_pipeline import make_pipeline, message
from workflow import Policy

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MovableClock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def commands_counted(samples: Samples) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["command"], dict(labels)["outcome"]): value
        for (name, labels), value in samples.items()
        if name == "aegis_commands_total"
    }


def value(samples: Samples, name: str) -> float:
    return samples[(name, frozenset())]


@asynccontextmanager
async def serving(health: Health) -> AsyncIterator[str]:
    server = WebServer([health])
    port = await server.start("127.0.0.1:0")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.stop()


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


def unreachable(database_url: str, tmp_path: Path) -> str:
    """The same kind of database, but one that cannot answer: SQLite on a path that is a
    directory, PostgreSQL on a port nothing listens on."""
    if database_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path}"
    return "postgresql+asyncpg://postgres@127.0.0.1:1/aegis"


# --- /healthz and /readyz -------------------------------------------------------------------


async def test_readyz_follows_the_last_sync_and_healthz_always_answers(
    database: Database,
) -> None:
    monotonic = FakeMonotonic()
    status = SyncStatus(monotonic)
    health = Health(database, status, Metrics(status.lag, FixedClock()))
    async with serving(health) as base:
        assert (await get(f"{base}/healthz"))[0] == 200
        code, body = await get(f"{base}/readyz")
        assert code == 503 and json.loads(body)["reason"] == "no successful sync yet"

        status.mark()
        code, body = await get(f"{base}/readyz")
        assert code == 200 and json.loads(body) == {"status": "ready"}

        monotonic.now += 59
        assert (await get(f"{base}/readyz"))[0] == 200
        monotonic.now += 1
        code, body = await get(f"{base}/readyz")
        assert code == 503 and "last successful sync 60s ago" in json.loads(body)["reason"]
        samples = parse((await get(f"{base}/metrics"))[1])
        assert value(samples, "aegis_sync_lag_seconds") == 60

        status.mark()
        assert (await get(f"{base}/readyz"))[0] == 200
        assert (await get(f"{base}/healthz"))[0] == 200


async def test_readyz_is_503_while_the_database_does_not_answer(
    database_url: str, tmp_path: Path
) -> None:
    down = Database(unreachable(database_url, tmp_path))
    status = SyncStatus()
    status.mark()
    health = Health(down, status, Metrics(status.lag, FixedClock()))
    try:
        async with serving(health) as base:
            code, body = await get(f"{base}/readyz")
            assert code == 503
            assert json.loads(body)["reason"].startswith("database unavailable")
            assert (await get(f"{base}/healthz"))[0] == 200
            # Metrics are still served; what only the database knows is NaN.
            code, text = await get(f"{base}/metrics")
            assert code == 200
            assert math.isnan(value(parse(text), "aegis_pending_proposals"))
    finally:
        await down.close()


# --- what the counters count ----------------------------------------------------------------


async def test_commands_are_counted_once_by_name_and_outcome(database: Database) -> None:
    status = SyncStatus()
    metrics = Metrics(status.lag, FixedClock())
    pipeline = dataclasses.replace(make_pipeline(database, []), on_command=metrics.command_handled)
    await pipeline.handle("!coordination", message("$1", "!ping"))
    await pipeline.handle("!coordination", message("$1", "!ping"))  # a replay: not counted
    await pipeline.handle("!coordination", message("$2", "!ping again"))
    await pipeline.handle("!coordination", message("$3", "!explode"))
    await pipeline.handle("!coordination", message("$4", "!pnig"))
    await pipeline.handle("!coordination", message("$5", "!ping " + "x" * 5000))
    await pipeline.handle("!coordination", message("$6", "just talking"))  # not a command
    samples = parse(metrics.exposition().decode())
    assert commands_counted(samples) == {
        ("ping", "ok"): 2,
        ("explode", "internal_error"): 1,
        ("unknown", "usage_error"): 1,
        ("unknown", "refused"): 1,
    }
    histogram = {
        dict(labels)["command"]: v
        for (name, labels), v in samples.items()
        if name == "aegis_command_duration_seconds_count"
    }
    assert histogram == {"ping": 2, "explode": 1, "unknown": 2}


async def test_pending_proposals_and_the_age_of_the_oldest(database: Database) -> None:
    chat = make_chat(database)
    clock = MovableClock(chat.now)
    metrics = Metrics(SyncStatus().lag, clock)
    await metrics.refresh(database)
    samples = parse(metrics.exposition().decode())
    assert value(samples, "aegis_pending_proposals") == 0
    assert value(samples, "aegis_oldest_pending_proposal_age_seconds") == 0

    ref = await dossier(chat)
    await propose(chat, ref)
    chat.advance(hours=1)
    await propose(chat, ref, LIAISON)
    clock.moment = chat.now + timedelta(hours=2)
    await metrics.refresh(database)
    samples = parse(metrics.exposition().decode())
    assert value(samples, "aegis_pending_proposals") == 2
    assert value(samples, "aegis_oldest_pending_proposal_age_seconds") == 3 * 3600


async def test_reminders_fired_and_late_come_from_the_scheduler(database: Database) -> None:
    metrics = Metrics(SyncStatus().lag, FixedClock())
    clock = MovableClock(MEETING - timedelta(days=1))  # the 1d reminder, on time
    pipeline = dataclasses.replace(
        make_pipeline(database, []),
        policy=Policy(timezone=BRUSSELS, meetings=(WEEKLY,)),
        clock=clock,
    )
    scheduler = Scheduler(pipeline, asyncio.Event(), metrics)
    assert await scheduler.tick() == 1
    clock.moment = MEETING - timedelta(minutes=30)  # the 1h reminder, 30 minutes late
    assert await scheduler.tick() == 1
    assert await scheduler.tick() == 0  # nothing twice
    samples = parse(metrics.exposition().decode())
    assert value(samples, "aegis_reminders_fired_total") == 2
    assert value(samples, "aegis_reminders_late_total") == 1


async def test_send_retries_and_rate_limit_waits_are_counted(database: Database) -> None:
    metrics = Metrics(SyncStatus().lag, FixedClock())
    client = AsyncClient("http://127.0.0.1:1", "@aegis:aegis.test")
    metrics.watch_rate_limits(client)
    # What nio does before it sleeps out a 429, and what it does with any other error.
    await client.run_response_callbacks([RoomSendError("slow down", "M_LIMIT_EXCEEDED", 10)])
    await client.run_response_callbacks([RoomSendError("nope", "M_FORBIDDEN")])

    answers: list[object] = [RoomSendError("bad gateway", "502"), RoomSendResponse("$ok", "!r")]

    class OneFailure:
        def __init__(self) -> None:
            self.rooms = {"!r": SimpleNamespace(users={})}

        async def room_send(self, *_args: Any, **_kwargs: Any) -> object:
            return answers.pop(0)

    audience = make_pipeline(database, []).audience
    sender = Sender(OneFailure(), database, FixedClock(), asyncio.Event(), audience, metrics)  # type: ignore[arg-type]
    async with database.transaction() as session:
        await outbox.enqueue(
            session,
            txn_id="t1",
            room_id="!r",
            event_type="m.room.message",
            content={"body": "hi"},
            now=FixedClock().now(),
        )
        [pending] = await outbox.pending(session)
    await sender._deliver(pending, Backoff(first=0.01, cap=0.01))
    assert not answers
    samples = parse(metrics.exposition().decode())
    assert value(samples, "aegis_send_retries_total") == 1
    assert value(samples, "aegis_rate_limit_waits_total") == 1
    metrics.report_received()
    assert value(parse(metrics.exposition().decode()), "aegis_early_warning_reports_total") == 1
    await client.close()


# --- structured logs ------------------------------------------------------------------------


def record(**extra: Any) -> logging.LogRecord:
    entry = logging.LogRecord(
        "bot.pipeline", logging.WARNING, __file__, 1, "ignored %s", ("x",), None
    )
    for key, val in extra.items():
        setattr(entry, key, val)
    return entry


def test_json_log_lines_carry_the_event_and_the_room() -> None:
    line = json.loads(JsonFormatter().format(record(event_id="$e1", room_id="!r:hs", ref="ab12")))
    assert line["event_id"] == "$e1" and line["room_id"] == "!r:hs" and line["ref"] == "ab12"
    assert line["msg"] == "ignored x" and line["level"] == "WARNING"
    assert line["logger"] == "bot.pipeline"
    bare = json.loads(JsonFormatter().format(record()))
    assert "event_id" not in bare and "room_id" not in bare
    try:
        raise ValueError("boom")
    except ValueError:
        failed = record(event_id="$e2", room_id="!r:hs")
        failed.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(failed))
    assert line["event_id"] == "$e2" and "ValueError: boom" in line["exc"]


def test_text_log_lines_carry_the_event_and_the_room() -> None:
    text = TextFormatter("%(levelname)s %(message)s").format(record(event_id="$e1", room_id="!r"))
    assert text == "WARNING ignored x event_id=$e1 room_id=!r"


def test_pipeline_log_lines_about_an_event_name_it_and_its_room() -> None:
    """The pipeline's own context helper is what its event log lines pass as `extra`."""
    event = message("$e9", "!ping")
    assert _ctx("!room", event) == {"room_id": "!room", "event_id": "$e9", "sender": event.sender}


# --- the running bot, scraped ---------------------------------------------------------------


@pytest.mark.homeserver
async def test_metrics_of_a_running_bot_count_exactly_the_commands_sent(world: World) -> None:
    await world.seat(world.stranger, "coordination")
    async with world.running_bot() as bot:
        assert bot.app.web is not None
        base = f"http://127.0.0.1:{bot.app.web.port}"
        assert (await get(f"{base}/healthz"))[0] == 200
        sent = [(world.alice, "!ping") for _ in range(5)]
        sent += [(world.alice, "!pnig"), (world.alice, "!dossier show")]
        sent += [(world.stranger, "!ping")]
        for user, body in sent:
            event_id = await user.say(world.coordination, body)
            await user.reply_to(world.coordination, event_id)
        code, text = await get(f"{base}/metrics")
        assert code == 200
        samples = parse(text)
        assert commands_counted(samples) == {
            ("ping", "ok"): 5,
            ("unknown", "usage_error"): 1,
            ("dossier show", "usage_error"): 1,
            ("ping", "refused"): 1,
        }
        handled = sum(
            v for (name, _), v in samples.items() if name == "aegis_command_duration_seconds_count"
        )
        assert handled == len(sent)
        assert value(samples, "aegis_pending_proposals") == 0
        assert ("aegis_sync_lag_seconds", frozenset()) in samples
        code, body = await get(f"{base}/readyz")
        assert code == 200, body
