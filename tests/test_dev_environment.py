"""Acceptance for `make dev` (scripts/dev.py): it brings up the homeserver and the bot, a
demo user in the demo coordination room gets !ping answered and sees the demo briefing's
reminder within seconds, and the printed web addresses answer. A second run reuses the
rooms, passwords and generated config, and never overwrites what the user edited."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import nio
import pytest
import yaml

from config import load_settings
from tests.support.bot_runner import BotProcess
from tests.support.homeserver import free_port
from tests.support.matrix_user import MatrixUser, content

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.homeserver


def load_dev_script() -> ModuleType:
    """scripts/ is not a package: load dev.py by path, as `python scripts/dev.py` would.

    It must be in sys.modules while it runs: its dataclasses resolve annotations there.
    """
    name = "aegis_dev_script"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def bot_log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else "(no bot log)"


def is_briefing_reminder(bot_user_id: str) -> Any:
    def check(event: nio.Event) -> bool:
        return (
            event.sender == bot_user_id
            and isinstance(event, nio.RoomMessage)
            and str(content(event).get("body", "")).startswith("Reminder: briefing meeting")
        )

    return check


async def status_of(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        return response.status


async def test_demo_user_gets_ping_answered_and_a_second_prepare_reuses_everything(
    tmp_path: Path,
) -> None:
    dev = load_dev_script()
    started = datetime.now(UTC)
    env = await dev.prepare(tmp_path, port=free_port(), http_port=free_port())
    prepared = datetime.now(UTC)
    log_path = tmp_path / "bot.log"
    bot = BotProcess(env.config_path, log_path, env.demo_meeting_path, env.overrides_path)
    alice: MatrixUser | None = None
    try:
        # The three meetings a team keeps, and a briefing a few minutes ahead.
        settings = load_settings(*env.config_files)
        assert sorted(settings.meetings) == ["ambassades", "briefing", "digest", "weekly"]
        assert [settings.meetings[m].agenda for m in ("weekly", "ambassades", "digest")] == [
            "weekly",
            "monthly",
            "daily",
        ]
        # Three to four minutes after the files were written, at a whole minute.
        assert env.briefing_at - started >= timedelta(minutes=3)
        assert env.briefing_at - prepared < timedelta(minutes=4)
        assert (env.briefing_at.second, env.briefing_at.microsecond) == (0, 0)
        first_reminder = env.briefing_at - max(settings.meetings["briefing"].remind_before)
        assert started <= first_reminder <= prepared + timedelta(seconds=16)

        printed = dev.summary(env)
        web = f"http://127.0.0.1:{env.http_port}"
        for address in (f"{web}/report", f"{web}/api/v1", f"{web}/metrics"):
            assert address in printed
        assert "1. !help" in printed
        assert "2. !dossier open" in printed
        assert "3. !measure propose" in printed
        assert env.partner_token in printed

        bot.start()
        alice_id, alice_password = env.users["alice"]
        alice = await MatrixUser.create(
            env.homeserver, "alice", tmp_path / "alice-store", alice_password
        )
        assert alice.user_id == alice_id
        coordination = env.rooms["coordination"]
        try:
            await alice.wait_for_member(coordination, env.bot_user_id, timeout=60)
            command = await alice.say(coordination, "!ping")
            reply = await alice.reply_to(coordination, command, timeout=60)
            reminder = await alice.wait_for(
                coordination, is_briefing_reminder(env.bot_user_id), timeout=90
            )
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n--- bot log ---\n{bot_log(log_path)}") from None
        assert reply.sender == env.bot_user_id
        assert reply.decrypted  # the demo rooms are encrypted, and so is the answer
        assert "pong" in content(reply)["body"].lower()
        assert "LATE" not in content(reminder)["body"]
        # What the summary printed answers: the form, the partner API with the demo
        # partner's token, the metrics.
        assert await status_of(f"{web}/report") == 200
        assert await status_of(f"{web}/api/v1/warnings", env.partner_token) == 200
        assert await status_of(f"{web}/metrics") == 200
        assert bot.process is not None
        assert bot.process.poll() is None, bot_log(log_path)
        assert bot.terminate() == 0, bot_log(log_path)  # SIGTERM is a clean stop
    finally:
        if alice is not None:
            await alice.close()
        bot.kill()
        env.homeserver.stop()

    state = json.loads((tmp_path / "state.json").read_text())
    generated = env.config_path.read_text()
    mine = "bot:\n  prefix: '?'\n"
    env.overrides_path.write_text(mine)
    again = await dev.prepare(tmp_path)  # no port: the remembered one must be reused
    try:
        assert again.homeserver.port == env.homeserver.port == state["port"]
        assert again.http_port == env.http_port
        assert again.rooms == env.rooms
        assert again.users == env.users
        assert again.bot_password == env.bot_password
        assert again.partner_token == env.partner_token
        assert again.config_path.read_text() == generated
        assert again.overrides_path.read_text() == mine
        assert load_settings(*again.config_files).bot.prefix == "?"
    finally:
        again.homeserver.stop()


def test_an_edited_config_is_never_overwritten(tmp_path: Path) -> None:
    """The generated file is the user's once edited: kept as it is, and a fresh version goes
    beside it only when what would be generated has changed."""
    dev = load_dev_script()
    path = tmp_path / "aegis.yaml"
    beside = tmp_path / "aegis.generated.yaml"
    state: dict[str, Any] = {}
    assert dev._write_generated(path, "a: 1\n", state) is None
    assert path.read_text() == "a: 1\n"
    assert dev._write_generated(path, "a: 2\n", state) is None  # unedited: kept up to date
    assert path.read_text() == "a: 2\n"

    path.write_text("a: 2\nlogging: {level: DEBUG}\n")
    assert dev._write_generated(path, "a: 2\n", state) is None
    assert path.read_text() == "a: 2\nlogging: {level: DEBUG}\n"
    assert not beside.exists()
    assert dev._write_generated(path, "a: 3\n", state) == beside
    assert path.read_text() == "a: 2\nlogging: {level: DEBUG}\n"
    assert yaml.safe_load(beside.read_text()) == {"a": 3}
    assert dev._write_generated(path, "a: 3\n", state) is None  # told once
    assert path.read_text() == "a: 2\nlogging: {level: DEBUG}\n"


def test_the_briefing_is_a_whole_minute_at_least_three_minutes_ahead() -> None:
    dev = load_dev_script()
    brussels = dev.ZoneInfo("Europe/Brussels")
    for now, expected in (
        (datetime(2026, 12, 1, 17, 10, 0, tzinfo=UTC), datetime(2026, 12, 1, 18, 13)),
        (datetime(2026, 12, 1, 17, 10, 1, tzinfo=UTC), datetime(2026, 12, 1, 18, 14)),
        (datetime(2026, 12, 1, 22, 58, 30, tzinfo=UTC), datetime(2026, 12, 2, 0, 2)),
    ):
        assert dev.briefing_time(now) == expected.replace(tzinfo=brussels)
