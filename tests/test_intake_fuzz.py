"""Schemathesis against the served OpenAPI document, on a live loopback server with a real
partner token, on SQLite and PostgreSQL: valid and invalid requests for every operation
never get a 5xx, every answer is documented and matches its schema, and invalid data is
refused.

Schemathesis calls synchronously, so the server runs on its own event loop in a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from bot.intake.api import IntakeApi
from storage.db import Database
from tests.support.databases import BACKENDS, TEST_AUDIT_KEY, create_pg_database, drop_pg_database
from tests.support.intake import BRUSSELS, MovableClock, bearer, serve

pytestmark = pytest.mark.timeout(240)

# Examples per operation and mode; a few hundred requests in all per database. (Schemathesis
# leaves out the operation serving the document it was loaded from.)
EXAMPLES = {"submitReport": 120, "getReport": 25, "listWarnings": 10, "openapi": 3}


@dataclass
class Live:
    base: str
    token: str
    clock: MovableClock


@pytest.fixture(params=BACKENDS)
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Live]:
    ready = threading.Event()
    found: dict[str, Any] = {}
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        url = (
            await create_pg_database()
            if request.param == "postgresql"
            else f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"
        )
        db = Database(url, TEST_AUDIT_KEY.encode())
        try:
            await db.migrate()
            async with serve(
                db,
                lambda intake, clock: [IntakeApi(intake, clock.now)],
                reports_per_hour=10_000,
            ) as served:
                new = await served.partner("Fuzz Energy")
                found["live"] = Live(served.base, new.token, served.clock)
                ready.set()
                await stop.wait()
        finally:
            await db.close()
            if request.param == "postgresql":
                await drop_pg_database(url)

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as exc:
            found["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=run, name="intake-fuzz-server", daemon=True)
    thread.start()
    ready.wait(60)
    if "error" in found:
        raise found["error"]
    try:
        yield found["live"]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
]


def fuzz(
    live: Live,
    http: requests.Session,
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    statuses: set[int],
) -> None:
    auth = bearer(live.token)
    checks = list(CHECKS)
    if mode is GenerationMode.NEGATIVE:
        checks.append(schemathesis.checks.negative_data_rejection)

    @settings(
        max_examples=EXAMPLES[operation.definition.raw["operationId"]],
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), recent=st.booleans())
    def run(case: schemathesis.Case, recent: bool) -> None:
        # Half of the valid reports are seen just now, so that they get past the time check
        # and reach the database.
        positive = mode is GenerationMode.POSITIVE
        if positive and recent and isinstance(case.body, dict) and "observed_at" in case.body:
            seen = live.clock.now() - timedelta(minutes=5)
            case.body["observed_at"] = seen.astimezone(BRUSSELS).isoformat()
        response = case.call(base_url=live.base, session=http, headers=auth)
        statuses.add(response.status_code)
        case.validate_response(response, checks=checks, headers=auth)

    run()


def test_fuzzing_the_api_gives_no_server_errors(live: Live) -> None:
    schema = schemathesis.openapi.from_url(f"{live.base}/api/v1/openapi.json")
    statuses: dict[str, set[int]] = {}
    with requests.Session() as http:
        for result in schema.get_all_operations():
            operation = result.ok()
            seen = statuses.setdefault(operation.definition.raw["operationId"], set())
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                fuzz(live, http, operation, mode, seen)
    # The fuzzing reached past validation: reports were stored, and some read back.
    assert {201, 400} <= statuses["submitReport"], statuses
    assert 404 in statuses["getReport"], statuses
    assert 200 in statuses["listWarnings"], statuses
    assert all(code < 500 for codes in statuses.values() for code in codes)
