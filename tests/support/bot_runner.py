"""Running the bot against the test homeserver: in-process for most tests, as a real
subprocess where a test must SIGKILL it."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bot.app import Aegis
from config import load_settings
from tests.support.homeserver import Homeserver
from tests.support.matrix_user import MatrixUser
from workflow.clock import Clock

REPO = Path(__file__).resolve().parents[2]
ROOM_KEYS = ("coordination", "approvals", "operations", "early_warning")


@dataclass
class BotSetup:
    """A bot account, its rooms and a config file, for one test."""

    homeserver: Homeserver
    workdir: Path
    database_url: str
    user_id: str = ""
    password: str = ""
    rooms: dict[str, str] = field(default_factory=dict)
    roles: dict[str, list[str]] = field(default_factory=dict)
    allowed_servers: list[str] = field(default_factory=list)
    device_id: str = "AEGISTEST"

    @property
    def config_path(self) -> Path:
        return self.workdir / "aegis.yaml"

    async def register_bot(self) -> None:
        localpart = "aegis-" + secrets.token_hex(4)
        self.password = secrets.token_urlsafe(12)
        self.user_id = await self.homeserver.register(localpart, self.password)

    def write_config(self, **overrides: Any) -> Path:
        config: dict[str, Any] = {
            "matrix": {
                "homeserver": self.homeserver.url,
                "user_id": self.user_id,
                "password": self.password,
                "device_id": self.device_id,
                "store_path": str(self.workdir / "store"),
            },
            "database": {"url": self.database_url},
            "rooms": self.rooms,
            "roles": self.roles,
            "allowed_servers": self.allowed_servers or [self.homeserver.server_name],
            "logging": {"level": "INFO"},
            "http": {"listen": "127.0.0.1:0"},
            # No periodic audit checkpoints in coordination while tests count its notices;
            # the one at shutdown still goes (no audit.key: the bot generates its key file).
            "audit": {"checkpoint_every": 1_000_000, "checkpoint_minutes": 10_080},
        }
        for section, values in overrides.items():
            config.setdefault(section, {}).update(values)
        self.config_path.write_text(yaml.safe_dump(config))
        return self.config_path

    async def create_rooms(
        self, creator: MatrixUser, members: list[MatrixUser], encrypted: bool = True
    ) -> None:
        """The configured rooms: created by `creator`, members joined, the bot invited. The
        rooms are independent, so they are made side by side: the homeserver's work on one
        overlaps the clients' on another."""

        made: dict[str, str] = {}

        async def create(key: str) -> None:
            room_id = await creator.create_room(
                f"aegis {key}",
                invite=[m.user_id for m in members] + [self.user_id],
                encrypted=encrypted,
            )
            for member in members:
                await member.join(room_id)
            made[key] = room_id

        await asyncio.gather(*(create(key) for key in ROOM_KEYS))
        for key in ROOM_KEYS:
            self.rooms[key] = made[key]


class FakeClock:
    """Starts at the real time and moves only when a test says so."""

    def __init__(self) -> None:
        self.moment = datetime.now(UTC)

    def now(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


class InProcessBot:
    """The bot as an asyncio task in the test's loop; fast, for tests that need no SIGKILL."""

    def __init__(self, config_path: Path, clock: Clock | None = None) -> None:
        self.app = Aegis(load_settings(config_path), clock)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.app.run())

    async def ready(self, timeout: float = 30) -> None:  # noqa: ASYNC109
        """Waits until the first sync was handled, so the bot's join point is set."""

        await asyncio.wait_for(self.app.started.wait(), timeout)

    async def stop(self) -> None:
        self.app.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 30)


class BotProcess:
    """`python -m bot run -c FILE [-c OVERRIDES…]` in a subprocess, so that SIGKILL is a real
    crash."""

    def __init__(self, config_path: Path, log_path: Path, *overrides: Path) -> None:
        self.config_path = config_path
        self.overrides = overrides  # merged over config_path, in order (`-c` again)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bot",
                "run",
                *(arg for path in (self.config_path, *self.overrides) for arg in ("-c", str(path))),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self) -> int | None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode if self.process else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


async def run_aegis(*args: str) -> tuple[int, str, str]:
    """The real `aegis` CLI in a child process, as an operator runs it on the host; awaited,
    so a bot running in this event loop keeps running meanwhile. (exit code, stdout, stderr)"""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
