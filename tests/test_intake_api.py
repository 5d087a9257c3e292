"""The partners' JSON API over real HTTP on loopback, on SQLite and PostgreSQL: reports in
and read back, and each kind of bad request getting exactly its specified answer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest

from bot.intake.api import IntakeApi
from bot.web import MAX_BODY
from storage.db import Database
from tests.support.intake import Served, a_report, bearer, serve

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def api(database: Database) -> AsyncIterator[Served]:
    async with serve(database, lambda intake, clock: [IntakeApi(intake, clock.now)]) as served:
        yield served


async def post(
    served: Served,
    body: Any,
    headers: dict[str, str] | None = None,
    *,
    raw: bytes | None = None,
) -> tuple[int, dict[str, Any], aiohttp.typedefs.LooseHeaders]:
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{served.base}/api/v1/reports", data=data, headers=headers) as response,
    ):
        assert response.content_type == "application/json"
        return response.status, await response.json(), response.headers


async def get(served: Served, path: str, token: str | None) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(served.base + path, headers=bearer(token) if token else {}) as response,
    ):
        assert response.content_type == "application/json"
        return response.status, await response.json()


async def test_a_report_is_taken_in_and_its_status_read_back(api: Served) -> None:
    acme = await api.partner("Acme Energy")
    report = a_report(api.clock)
    status, body, headers = await post(api, report, bearer(acme.token))
    assert status == 201
    assert body == {
        "id": "EW-1",
        "status": "new",
        "status_url": f"{api.base}/api/v1/reports/EW-1",
    }
    assert headers["Location"] == body["status_url"]

    for ref in ("EW-1", "1", "ew-1"):
        status, shown = await get(api, f"/api/v1/reports/{ref}", acme.token)
        assert status == 200, ref
    assert shown["id"] == "EW-1"
    assert shown["status"] == "new"
    assert shown["category"] == "vehicle"
    assert shown["location"] == report["location"]
    assert shown["description"] == report["description"]
    assert shown["vehicle_plate"] == "1-ABC-123"
    assert shown["attachments"] == report["attachments"]
    assert datetime.fromisoformat(shown["observed_at"]) == api.clock.now() - timedelta(hours=1)

    assert await get(api, "/api/v1/warnings", acme.token) == (200, {"warnings": []})
    async with aiohttp.ClientSession() as http, http.get(api.base + "/api/v1/openapi.json") as r:
        assert r.status == 200
        spec = await r.json()
    assert spec["openapi"] == "3.1.0"
    assert spec["servers"] == [{"url": api.base}]


async def test_bad_missing_and_revoked_tokens_get_one_answer_and_are_audited(
    api: Served,
) -> None:
    acme = await api.partner("Acme Energy")
    gone = await api.partner("Gone Telecom")
    status, _, _ = await post(api, a_report(api.clock), bearer(gone.token))
    assert status == 201
    await api.revoke(gone.partner.id)

    attempts: list[dict[str, str]] = [
        {},
        bearer("aegis_ew_not-a-real-token"),
        bearer("x" * 500),
        {"Authorization": f"Basic {acme.token}"},
        {"Authorization": "Bearer"},
        bearer(gone.token),
    ]
    answers = set()
    for headers in attempts:
        status, body, answer_headers = await post(api, a_report(api.clock), headers)
        assert status == 401
        assert answer_headers["WWW-Authenticate"].startswith("Bearer")
        answers.add(json.dumps(body))
    for headers in attempts:
        async with aiohttp.ClientSession() as http:
            for path in ("/api/v1/reports/EW-1", "/api/v1/warnings"):
                async with http.get(api.base + path, headers=headers) as response:
                    assert response.status == 401
                    answers.add(json.dumps(await response.json()))
    assert answers == {json.dumps({"error": "invalid or missing token"})}

    refused = await api.audited("refused:intake.auth")
    assert len(refused) == 3 * len(attempts)
    assert all(entry.actor == "http:127.0.0.1" for entry in refused)
    assert not any(gone.token in entry.detail or acme.token in entry.detail for entry in refused)
    assert await api.report_count() == 1


BAD_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"observed_at": "2026-11-25T08:00:00"}, "observed_at"),
    ({"observed_at": "yesterday"}, "observed_at"),
    ({"observed_at": 1764057600}, "observed_at"),
    ({"location": {"address": "Gate 3", "lat": 51.3}}, "location"),
    ({"location": {"address": "Gate 3", "lat": 95, "lon": 4}}, "location.lat"),
    ({"location": {"address": "Gate 3", "lat": 51, "lon": "4"}}, "location.lon"),
    ({"location": {"address": "Gate 3", "lat": float("nan"), "lon": 4}}, "location.lat"),
    ({"location": {"address": "Gate 3", "lat": 51, "lon": float("inf")}}, "location.lon"),
    ({"location": {"address": ""}}, "location.address"),
    ({"location": {"address": "x" * 301}}, "location.address"),
    ({"location": {"address": "\ufb03" * 101}}, "location.address"),
    ({"location": "Gate 3"}, "location"),
    ({"category": "car"}, "category"),
    ({"description": "   "}, "description"),
    ({"description": "x" * 4001}, "description"),
    ({"description": "nul \x00 byte"}, "description"),
    ({"description": 42}, "description"),
    ({"vehicle_plate": "1" * 33}, "vehicle_plate"),
    ({"vehicle_plate": "ß" * 17}, "vehicle_plate"),
    ({"contact": "c" * 301}, "contact"),
    ({"attachments": ["ftp://files.example.com/a"]}, "attachments.0"),
    ({"attachments": ["https://ok.example.com", "javascript:alert(1)"]}, "attachments.1"),
    ({"attachments": ["https://example.com/" + "a" * 500]}, "attachments.0"),
    ({"attachments": [f"https://example.com/{i}" for i in range(11)]}, "attachments"),
    ({"attachments": "https://example.com/a"}, "attachments"),
    ({"priority": "high"}, "priority"),
]


async def test_bad_fields_are_named_in_a_400(api: Served) -> None:
    acme = await api.partner("Acme Energy")
    for change, field in BAD_FIELDS:
        status, body, _ = await post(api, a_report(api.clock, **change), bearer(acme.token))
        assert status == 400, change
        assert body["error"] == "invalid report"
        assert field in body["fields"], (change, body)
    assert await api.report_count() == 0


async def test_malformed_json_times_out_of_range_and_missing_fields_answer_400(
    api: Served,
) -> None:
    acme = await api.partner("Acme Energy")
    token = bearer(acme.token)
    for raw in (b"{", b"", b"[1, 2]", b"null", b'"report"', b"\xff\xfe", b'{"a": 1'):
        status, body, _ = await post(api, None, token, raw=raw)
        assert status == 400, raw
        assert list(body["fields"]) == ["body"], (raw, body)

    status, body, _ = await post(api, {}, token)
    assert status == 400
    assert set(body["fields"]) == {"observed_at", "location", "category", "description"}

    now = api.clock.now()
    for when, message in (
        (now + timedelta(minutes=11), "future"),
        (now - timedelta(days=366), "one year"),
    ):
        status, body, _ = await post(api, a_report(api.clock, observed_at=when.isoformat()), token)
        assert status == 400
        assert message in body["fields"]["observed_at"]
    status, _, _ = await post(
        api, a_report(api.clock, observed_at=(now + timedelta(minutes=9)).isoformat()), token
    )
    assert status == 201

    status, body, _ = await post(api, a_report(api.clock), {**token, "Idempotency-Key": "é" * 3})
    assert status == 400
    assert "Idempotency-Key" in body["fields"]

    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        status, body, _ = await post(api, a_report(api.clock), {**token, "Content-Type": kind})
        assert status == 415
        assert "application/json" in body["error"]
    assert await api.report_count() == 1


async def test_an_oversized_body_is_refused_with_413(api: Served) -> None:
    acme = await api.partner("Acme Energy")
    big = json.dumps(a_report(api.clock, description="x" * MAX_BODY)).encode()
    status, body, _ = await post(api, None, bearer(acme.token), raw=big)
    assert status == 413
    assert str(MAX_BODY) in body["error"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: refused while reading
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{api.base}/api/v1/reports",
            data=chunks(),
            headers={"Content-Type": "application/json", **bearer(acme.token)},
        ) as response,
    ):
        assert response.status == 413
        assert "error" in await response.json()
    assert await api.report_count() == 0


async def test_the_rate_limit_answers_429_with_retry_after(database: Database) -> None:
    async with serve(
        database, lambda intake, clock: [IntakeApi(intake, clock.now)], reports_per_hour=3
    ) as api:
        acme = await api.partner("Acme Energy")
        other = await api.partner("Other Energy")
        for _ in range(3):
            status, _, _ = await post(api, a_report(api.clock), bearer(acme.token))
            assert status == 201
            api.clock.advance(minutes=10)
        status, body, headers = await post(api, a_report(api.clock), bearer(acme.token))
        assert status == 429
        # The first of the three came 30 minutes ago: the window frees up in 30 minutes.
        assert headers["Retry-After"] == "1800"
        assert body == {"error": "rate limit exceeded", "retry_after": 1800}
        assert (await post(api, a_report(api.clock), bearer(other.token)))[0] == 201

        api.clock.advance(minutes=29, seconds=59.5)
        status, body, headers = await post(api, a_report(api.clock), bearer(acme.token))
        assert (status, headers["Retry-After"]) == (429, "1")
        api.clock.advance(seconds=1)
        assert (await post(api, a_report(api.clock), bearer(acme.token)))[0] == 201
        assert await api.report_count() == 5
        assert len(await api.audited("refused:ew.report")) == 2


async def test_script_tags_are_stored_verbatim_and_returned_as_escaped_json(
    api: Served,
) -> None:
    acme = await api.partner("Acme Energy")
    script = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    report = a_report(
        api.clock, description=script, location={"address": f"<b>{script}</b>"}, contact=script
    )
    status, _, _ = await post(api, report, bearer(acme.token))
    assert status == 201
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{api.base}/api/v1/reports/EW-1", headers=bearer(acme.token)) as response,
    ):
        assert response.content_type == "application/json"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        text = await response.text()
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\\u003cscript\\u003e" in text
    shown = json.loads(text)
    assert shown["description"] == script
    assert shown["contact"] == script
    assert shown["location"]["address"] == f"<b>{script}</b>"
    stored = await api.intake.report(acme.partner, 1)
    assert stored is not None
    assert stored.input.description == script


async def test_a_partner_cannot_read_another_partners_report(api: Served) -> None:
    acme = await api.partner("Acme Energy")
    rival = await api.partner("Rival Energy")
    assert (await post(api, a_report(api.clock), bearer(acme.token)))[0] == 201
    assert (await get(api, "/api/v1/reports/EW-1", acme.token))[0] == 200
    answers = {
        json.dumps(await get(api, f"/api/v1/reports/{ref}", rival.token))
        for ref in ("EW-1", "1", "EW-2", "EW-0", "EW-99999999999999999999", "EW-١", "abc", "%00")
    }
    assert answers == {json.dumps([404, {"error": "report not found"}])}


async def test_an_idempotency_key_replay_returns_the_first_report(api: Served) -> None:
    acme = await api.partner("Acme Energy")
    rival = await api.partner("Rival Energy")
    key = {"Idempotency-Key": "acme-2026-11-25-0001"}
    first = await post(api, a_report(api.clock), {**bearer(acme.token), **key})
    again = await post(
        api, a_report(api.clock, description="sent twice"), {**bearer(acme.token), **key}
    )
    assert (first[0], again[0]) == (201, 200)
    assert first[1] == again[1]
    assert again[2]["Location"] == first[2]["Location"]
    other_key = await post(api, a_report(api.clock), {**bearer(acme.token), "Idempotency-Key": "2"})
    other_partner = await post(api, a_report(api.clock), {**bearer(rival.token), **key})
    assert (other_key[0], other_partner[0]) == (201, 201)
    assert len({first[1]["id"], other_key[1]["id"], other_partner[1]["id"]}) == 3
    assert await api.report_count() == 3


async def test_an_unexpected_failure_answers_500_with_a_reference_only(
    api: Served, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    acme = await api.partner("Acme Energy")

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database on fire: secret detail")

    monkeypatch.setattr(api.intake, "submit", broken)
    status, body, _ = await post(api, a_report(api.clock), bearer(acme.token))
    assert status == 500
    assert set(body) == {"error", "reference"}
    assert body["error"] == "internal error"
    assert "secret" not in json.dumps(body)
    assert body["reference"] in caplog.text
    assert "database on fire" in caplog.text
