"""Acceptance for `make dev` (scripts/dev.py): it brings up the homeserver and the bot, and a
demo user in the demo coordination room gets !ping answered. A second run reuses the rooms
and passwords, so the demo logins people wrote down keep working."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

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


async def test_demo_user_gets_ping_answered_and_a_second_prepare_reuses_everything(
    tmp_path: Path,
) -> None:
    dev = load_dev_script()
    env = await dev.prepare(tmp_path, port=free_port())
    log_path = tmp_path / "bot.log"
    bot = BotProcess(env.config_path, log_path)
    alice: MatrixUser | None = None
    try:
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
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n--- bot log ---\n{bot_log(log_path)}") from None
        assert reply.sender == env.bot_user_id
        assert reply.decrypted  # the demo rooms are encrypted, and so is the answer
        assert "pong" in content(reply)["body"].lower()
        assert bot.process is not None
        assert bot.process.poll() is None, bot_log(log_path)
        assert bot.terminate() == 0, bot_log(log_path)  # SIGTERM is a clean stop
    finally:
        if alice is not None:
            await alice.close()
        bot.kill()
        env.homeserver.stop()

    state = json.loads((tmp_path / "state.json").read_text())
    again = await dev.prepare(tmp_path)  # no port: the remembered one must be reused
    try:
        assert again.homeserver.port == env.homeserver.port == state["port"]
        assert again.rooms == env.rooms
        assert again.users == env.users
        assert again.bot_password == env.bot_password
        assert again.config_path.read_text() == env.config_path.read_text()
    finally:
        again.homeserver.stop()
