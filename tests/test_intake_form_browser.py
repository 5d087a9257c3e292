"""`/report` in a real browser (Debian's headless Chromium, driven by Playwright, with
JavaScript switched off to prove the form needs none), plus the session, CSRF, escaping and
rate-limit rules checked over plain HTTP. On SQLite and PostgreSQL.

Screenshots go to a temporary folder; `AEGIS_SCREENSHOTS=docs` writes the committed ones."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Page, async_playwright, expect

from bot.intake.api import IntakeApi
from bot.intake.form import ReportForm
from bot.intake.service import Intake
from bot.web import Routes
from commands.formatting import when
from storage.db import Database
from tests.support.intake import BRUSSELS, MovableClock, Served, a_report, bearer, serve
from workflow.early_warning_model import ReportStatus

pytestmark = [
    pytest.mark.timeout(180),
    # aiohttp-session keys the request with plain strings; nothing to act on here.
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[1]
SESSION_KEY = "a-session-key-of-at-least-32-characters"


def screenshots(tmp_path: Path) -> Path:
    wanted = os.environ.get("AEGIS_SCREENSHOTS")
    folder = (ROOT / wanted) if wanted else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def site(database: Database) -> AsyncIterator[Served]:
    async with serve(
        database, lambda intake, clock: [ReportForm(intake, SESSION_KEY, BRUSSELS, clock.now)]
    ) as served:
        yield served


def local(served: Served, ago: timedelta) -> str:
    return (served.clock.now() - ago).astimezone(BRUSSELS).strftime("%Y-%m-%dT%H:%M")


async def test_a_security_officer_reports_through_the_form(site: Served, tmp_path: Path) -> None:
    if not CHROMIUM.exists():  # noqa: ASYNC240 (one stat, before anything runs)
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium package "
            "(`apt-get install -y chromium`; .ci/run does it)"
        )
    acme = await site.partner("Acme Energy")
    shots = screenshots(tmp_path)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(
                java_script_enabled=False, viewport={"width": 820, "height": 900}, locale="en-GB"
            )
            page = await context.new_page()
            await page.goto(f"{site.base}/report")
            await expect(page.get_by_role("heading", level=1)).to_have_text(
                "Sign in to report an incident"
            )
            await page.get_by_label("API token").fill("aegis_ew_wrong")
            await page.get_by_role("button", name="Continue").click()
            await expect(page.locator("#token-error")).to_contain_text("not valid")
            await page.get_by_label("API token").fill(acme.token)
            await page.get_by_role("button", name="Continue").click()

            await expect(page.get_by_role("heading", level=1)).to_have_text(
                "Report a suspicious incident"
            )
            await expect(page.get_by_text("Signed in as Acme Energy (energy)")).to_be_visible()
            await page.screenshot(path=shots / "report-form.png", full_page=True)

            await fill(page, site, description="", lat="95.5", lon="")
            await page.get_by_role("button", name="Send report").click()
            summary = page.get_by_role("alert")
            await expect(summary).to_contain_text("There is a problem")
            await expect(summary).to_contain_text("What happened: Describe what happened.")
            await expect(page.locator("#description-error")).to_be_visible()
            await expect(page.locator("#lat-error")).to_contain_text("between -90 and 90")
            await expect(page.locator("#lon-error")).to_contain_text("longitude too")
            description = page.get_by_label("What happened?")
            await expect(description).to_have_attribute("aria-invalid", "true")
            await expect(description).to_have_attribute(
                "aria-describedby", "description-hint description-error"
            )
            await expect(page.get_by_label("Where?")).to_have_value("Gate 3, Doel power station")
            await expect(page.get_by_label("Vehicle plate (optional)")).to_have_value("1-ABC-123")
            await expect(page.get_by_label("What kind of incident?")).to_have_value("vehicle")
            assert await site.report_count() == 0
            await page.screenshot(path=shots / "report-form-errors.png", full_page=True)

            await page.get_by_label("Latitude").fill("51,3245")
            await page.get_by_label("Longitude").fill("4.2590")
            await description.fill(
                "A grey van stopped at the gate for ten minutes on three mornings; "
                "the driver filmed the barrier. <b>Not</b> one of our suppliers."
            )
            await page.get_by_role("button", name="Send report").click()

            await expect(page.get_by_role("heading", level=1)).to_have_text("Report received")
            ref = (await page.locator("#report-id").inner_text()).strip()
            assert re.fullmatch(r"EW-\d+", ref)
            await page.screenshot(path=shots / "report-confirmation.png", full_page=True)

            await page.get_by_role("link", name="follow the status of your reports").click()
            mine = page.get_by_role("table")
            await expect(mine.get_by_role("row")).to_have_count(2)  # the header and EW-n
            row = mine.locator(f"#report-{ref}")
            await expect(row.get_by_role("rowheader")).to_have_text(ref)
            await expect(row).to_contain_text(when(site.clock.now(), BRUSSELS))
            await expect(row).to_contain_text("new (received, not yet assessed)")
            await page.locator("section").screenshot(path=shots / "report-status.png")

            await page.get_by_role("button", name="Sign out").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text(
                "Sign in to report an incident"
            )
        finally:
            await browser.close()

    report = await site.intake.report(acme.partner, int(ref.removeprefix("EW-")))
    assert report is not None
    assert report.input.location == "Gate 3, Doel power station"
    assert (report.input.lat, report.input.lon) == (51.3245, 4.259)
    assert report.input.vehicle_plate == "1-ABC-123"
    assert report.input.description.endswith("<b>Not</b> one of our suppliers.")
    assert report.input.observed_at.astimezone(BRUSSELS).strftime("%Y-%m-%dT%H:%M") == local(
        site, timedelta(hours=2)
    )
    assert await site.report_count() == 1


async def fill(page: Page, served: Served, description: str, lat: str, lon: str) -> None:
    await page.get_by_label("When did you see it?").fill(local(served, timedelta(hours=2)))
    await page.get_by_label("Where?").fill("Gate 3, Doel power station")
    await page.get_by_label("Latitude").fill(lat)
    await page.get_by_label("Longitude").fill(lon)
    await page.get_by_label("What kind of incident?").select_option("vehicle")
    await page.get_by_label("What happened?").fill(description)
    await page.get_by_label("Vehicle plate (optional)").fill("1-ABC-123")
    await page.get_by_label("Who can we call back? (optional)").fill("Security desk, ext. 3")
    await page.get_by_label("Links to photos or documents (optional)").fill(
        "https://files.acme.example/gate3-monday.jpg"
    )


# --- the same rules over plain HTTP -------------------------------------------------------

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SUBMISSION = re.compile(r'name="submission" value="([^"]+)"')


def good_form(served: Served, **changes: str) -> dict[str, str]:
    form = {
        "observed_at": local(served, timedelta(hours=1)),
        "address": "Gate 3, Doel power station",
        "lat": "",
        "lon": "",
        "category": "vehicle",
        "description": "A grey van at the gate.",
        "vehicle_plate": "1ABC123",
        "contact": "",
        "attachments": "",
    }
    form.update(changes)
    return form


class Browser:
    """A cookie-keeping HTTP client, as a browser without JavaScript would behave."""

    def __init__(self, served: Served, http: aiohttp.ClientSession) -> None:
        self.served = served
        self.http = http
        self.csrf = ""
        self.submission = ""

    async def get(self, path: str = "/report") -> tuple[int, str]:
        async with self.http.get(self.served.base + path, allow_redirects=True) as response:
            html = await response.text()
        self._remember(html)
        return response.status, html

    async def post(self, path: str, form: dict[str, str]) -> tuple[int, str, str]:
        async with self.http.post(
            self.served.base + path, data=form, allow_redirects=True
        ) as response:
            html = await response.text()
            where = response.url.path
        self._remember(html)
        return response.status, html, where

    def _remember(self, html: str) -> None:
        if found := CSRF.search(html):
            self.csrf = found[1]
        if found := SUBMISSION.search(html):
            self.submission = found[1]

    async def sign_in(self, token: str) -> None:
        await self.get()
        status, html, _ = await self.post("/report/token", {"csrf": self.csrf, "token": token})
        assert status == 200
        assert "Report a suspicious incident" in html


@pytest.fixture
async def browser(site: Served) -> AsyncIterator[Browser]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield Browser(site, http)


async def test_posts_without_the_right_csrf_token_are_refused_and_store_nothing(
    site: Served, browser: Browser
) -> None:
    acme = await site.partner("Acme Energy")
    status, html = await browser.get()
    assert status == 200
    assert browser.csrf
    for form in ({"token": acme.token}, {"token": acme.token, "csrf": "forged"}):
        status, html, _ = await browser.post("/report/token", form)
        assert status == 403
        assert "nothing was sent" in html
    status, html = await browser.get()
    assert "Sign in to report an incident" in html

    await browser.sign_in(acme.token)
    good = good_form(site, submission=browser.submission)
    for form in (good, {**good, "csrf": ""}, {**good, "csrf": "forged" + browser.csrf}):
        status, html, _ = await browser.post("/report", form)
        assert status == 403
    assert await site.report_count() == 0
    status, _, _ = await browser.post("/report/sign-out", {"csrf": "forged"})
    assert status == 403

    status, html, where = await browser.post("/report", {**good, "csrf": browser.csrf})
    assert (status, where) == (200, "/report/sent/EW-1")
    assert "EW-1" in html
    assert await site.report_count() == 1

    # A reload of the sent form (same submission key) does not report twice.
    status, html, where = await browser.post("/report", {**good, "csrf": browser.csrf})
    assert where == "/report/sent/EW-1"
    assert await site.report_count() == 1


async def test_the_session_cookie_is_http_only_strict_and_secure_behind_https(
    database: Database,
) -> None:
    for public_url, secure in (("http://127.0.0.1", False), ("https://aegis.example.org", True)):

        def parts(intake: Intake, clock: MovableClock, url: str = public_url) -> list[Routes]:
            intake.public_url = url  # what the form is built with decides the Secure flag
            return [ReportForm(intake, None, BRUSSELS, clock.now)]

        async with (
            serve(database, parts) as served,
            aiohttp.ClientSession() as http,
            http.get(served.base + "/report") as response,
        ):
            cookie = response.headers["Set-Cookie"]
            assert cookie.startswith("aegis_report=")
            assert "HttpOnly" in cookie
            assert "SameSite=Strict" in cookie
            assert "Path=/report" in cookie
            assert ("Secure" in cookie) is secure
            assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
            html = await response.text()
            assert "<script" not in html
            csrf = CSRF.search(html)
            assert csrf is not None
            assert csrf[1] not in cookie  # encrypted, not merely signed


async def test_typed_text_is_escaped_when_the_form_is_shown_again(
    site: Served, browser: Browser
) -> None:
    acme = await site.partner("Acme <Energy> & Co")
    await browser.sign_in(acme.token)
    script = '<script>alert("x")</script>'
    form = good_form(
        site,
        address=f'"><img src=x onerror=alert(1)>{script}',
        description="",
        contact=script,
        attachments="javascript:alert(1)\nhttps://ok.example.org/a.jpg",
        csrf=browser.csrf,
        submission=browser.submission,
    )
    status, html, _ = await browser.post("/report", form)
    assert status == 400
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "Acme &lt;Energy&gt; &amp; Co" in html
    assert "Link 1: must be an http or https link" in html
    assert 'href="#description"' in html
    assert await site.report_count() == 0


async def test_bad_dates_coordinates_and_limits_are_explained(
    site: Served, browser: Browser
) -> None:
    acme = await site.partner("Acme Energy")
    await browser.sign_in(acme.token)
    cases = {
        "observed_at": ("tomorrow", "like 2026-11-25T07:40"),
        "lat": ("north", "decimal degrees"),
        "category": ("car", "Choose what kind"),
        "vehicle_plate": ("X" * 40, "at most 32 characters"),
        "attachments": ("\n".join(f"https://e.example/{i}" for i in range(11)), "at most 10 links"),
    }
    for name, (value, message) in cases.items():
        form = good_form(site, csrf=browser.csrf, **{name: value})
        if name == "lat":
            form["lon"] = "4.1"
        status, html, _ = await browser.post("/report", form)
        assert status == 400, name
        assert f'id="{name}-error"' in html
        assert message in html, (name, html)
    later = local(site, timedelta(minutes=-30))
    status, html, _ = await browser.post(
        "/report", good_form(site, csrf=browser.csrf, observed_at=later)
    )
    assert status == 400
    assert "10 minutes in the future" in html
    assert await site.report_count() == 0


async def test_the_rate_limit_shows_a_friendly_page(database: Database) -> None:
    async with (
        serve(
            database,
            lambda intake, clock: [ReportForm(intake, SESSION_KEY, BRUSSELS, clock.now)],
            reports_per_hour=1,
        ) as site,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
    ):
        acme = await site.partner("Acme Energy")
        browser = Browser(site, http)
        await browser.sign_in(acme.token)
        _, _, where = await browser.post("/report", good_form(site, csrf=browser.csrf))
        assert where == "/report/sent/EW-1"
        await browser.get()
        form = good_form(site, csrf=browser.csrf, submission=browser.submission)
        async with http.post(site.base + "/report", data=form) as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "3600"
            html = await response.text()
        assert "Too many reports" in html
        assert "60 minutes" in html
        assert await site.report_count() == 1


async def test_a_revoked_partner_is_signed_out(site: Served, browser: Browser) -> None:
    acme = await site.partner("Acme Energy")
    await browser.sign_in(acme.token)
    await site.revoke(acme.partner.id)
    status, html, _ = await browser.post("/report", good_form(site, csrf=browser.csrf))
    assert status == 401
    assert "Sign in again" in html
    assert await site.report_count() == 0
    status, html = await browser.get("/report/sent/EW-1")
    assert "Sign in to report an incident" in html


ROW = re.compile(r'<tr id="report-(EW-\d+)">(.*?)</tr>', re.S)
CELL = re.compile(r"<t[hd][^>]*>(.*?)</t[hd]>", re.S)
TAG = re.compile(r"<[^>]+>")


def own_reports(html: str) -> dict[str, list[str]]:
    """The form's table of the partner's reports: reference -> its cells' text."""
    return {
        ref: [" ".join(TAG.sub("", cell).split()) for cell in CELL.findall(row)]
        for ref, row in ROW.findall(html)
    }


async def test_a_partner_follows_its_own_reports_status_and_no_one_elses(
    database: Database,
) -> None:
    async with (
        serve(
            database,
            lambda intake, clock: [
                ReportForm(intake, SESSION_KEY, BRUSSELS, clock.now),
                IntakeApi(intake, clock.now),
            ],
        ) as site,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
    ):
        acme = await site.partner("Acme Energy")
        rival = await site.partner("Rival <b>Gas</b>")
        browser = Browser(site, http)
        await browser.sign_in(acme.token)
        status, html = await browser.get()
        assert "Your organisation has not sent any report yet." in html
        assert own_reports(html) == {}

        _, _, where = await browser.post("/report", good_form(site, csrf=browser.csrf))
        assert where == "/report/sent/EW-1"
        first_at = site.clock.now()
        site.clock.advance(minutes=7)
        rivals = a_report(site.clock, description="<script>alert(1)</script>")
        async with http.post(
            f"{site.base}/api/v1/reports", json=rivals, headers=bearer(rival.token)
        ) as response:
            assert response.status == 201
        site.clock.advance(minutes=5)
        await browser.get()
        _, _, where = await browser.post(
            "/report", good_form(site, csrf=browser.csrf, submission=browser.submission)
        )
        assert where == "/report/sent/EW-3"
        third_at = site.clock.now()
        site.clock.advance(hours=2)
        async with site.db.transaction() as session:
            await site.workflow(session).early_warning.assess(
                "@alice:aegis.test", "$assess", 1, ReportStatus.SUSPICIOUS, "same van as EW-2"
            )
        assessed_at = site.clock.now()

        status, html = await browser.get()
        assert status == 200
        shown = own_reports(html)
        assert list(shown) == ["EW-3", "EW-1"]  # newest first; the rival's EW-2 is not there
        for ref, received, changed in (
            ("EW-1", first_at, assessed_at),
            ("EW-3", third_at, third_at),
        ):
            async with http.get(
                f"{site.base}/api/v1/reports/{ref}", headers=bearer(acme.token)
            ) as response:
                api_status = (await response.json())["status"]
            number, received_text, status_text, changed_text = shown[ref]
            assert number == ref
            assert received_text == when(received, BRUSSELS)
            assert changed_text == when(changed, BRUSSELS)
            assert status_text.split(" ")[0] == api_status
        assert shown["EW-1"][2].startswith("suspicious (")
        assert shown["EW-3"][2].startswith("new (")
        assert "same van" not in html  # the partners' notes stay internal
        assert "Rival" not in html and "alert(1)" not in html
        assert not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", html)

        await browser.post("/report/sign-out", {"csrf": browser.csrf})
        await browser.sign_in(rival.token)
        _, html = await browser.get()
        assert list(own_reports(html)) == ["EW-2"]
