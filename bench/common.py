"""What the end-to-end benchmarks share: the machine description, a timing driver, and the
contenders (the floor echo client, Aegis, and the two peers), each a real subprocess on the
same loopback Synapse, each in its own unencrypted room.

The peers live in their own virtualenvs, made by `make bench-peers` (see PEER_VENVS); a peer
whose virtualenv is missing or that does not start is recorded with its error, not skipped
silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import math
import os
import platform
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nio
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.bot_runner import BotProcess, BotSetup  # noqa: E402
from tests.support.homeserver import Homeserver, synapse_python  # noqa: E402
from tests.support.matrix_user import MatrixUser  # noqa: E402

BENCH = REPO / "bench"
RESULTS = BENCH / "results"
PEER_VENVS = BENCH / ".venvs"
REMINDER_PYTHON = PEER_VENVS / "reminder" / "bin" / "python"
MAUBOT_PYTHON = PEER_VENVS / "maubot" / "bin" / "python"
ECHO_PLUGIN = BENCH / "maubot_echo" / "maubot.yaml"
LOG_FORMAT = "[%(asctime)s] [%(levelname)s@%(name)s] %(message)s"
ROLES = ["admin", "liaison", "analyst", "police", "approver"]


# --- the machine -------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _ram_mb() -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 0


def _version_in(python: Path | str, package: str) -> str:
    try:
        out = subprocess.run(
            [str(python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return out.stdout.strip() or f"unavailable ({out.stderr.strip().splitlines()[-1:]})"


def _git() -> dict[str, object]:
    def run(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain"))}


def machine() -> dict[str, object]:
    """Enough to tell two result files apart: hardware, software, load, date."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_mb": _ram_mb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "synapse": _version_in(synapse_python(), "matrix-synapse"),
        "matrix_nio": _version_in(sys.executable, "matrix-nio"),
        "matrix_reminder_bot": _version_in(REMINDER_PYTHON, "matrix-reminder-bot"),
        "maubot": _version_in(MAUBOT_PYTHON, "maubot"),
        "load_average_at_start": list(os.getloadavg()),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": _git(),
    }


async def create_pg(server_url: str) -> str:
    """A fresh database on server_url (tests/support/databases.py reads its server URL once,
    at import, from AEGIS_TEST_DATABASE_URL: point it at server_url first)."""
    from tests.support import databases

    databases.PG_URL = server_url
    return await databases.create_pg_database()


async def drop_pg(url: str) -> None:
    from tests.support import databases

    await databases.drop_pg_database(url)


def percentile(samples: list[float], q: float) -> float:
    """Nearest rank: the smallest sample with at least q of all samples at or below it."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def write_result(name: str, report: dict[str, Any]) -> Path:
    report.setdefault("machine", {})["load_average_at_end"] = list(os.getloadavg())
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


# --- accounts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    user_id: str
    password: str
    access_token: str
    device_id: str


async def register(hs: Homeserver, localpart: str, admin: bool = False) -> Account:
    """Shared-secret registration that keeps the access token it returns, so that a bot
    needs no password login: Synapse's default rc_login allows only a handful per address."""
    secret = str(yaml.safe_load(hs.config_path.read_text())["registration_shared_secret"])
    password = secrets.token_urlsafe(12)
    endpoint = f"{hs.url}/_synapse/admin/v1/register"
    async with aiohttp.ClientSession() as session:
        async with session.get(endpoint) as resp:
            nonce = (await resp.json())["nonce"]
        mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
        role = b"admin" if admin else b"notadmin"
        mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode(), role]))
        body = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }
        async with session.post(endpoint, json=body) as resp:
            data = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"register {localpart}: {resp.status} {data}")
    return Account(data["user_id"], password, data["access_token"], data["device_id"])


async def client_api(
    hs: Homeserver, token: str, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            f"{hs.url}{path}",
            json=body or {},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp,
    ):
        data: dict[str, Any] = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"{method} {path}: {resp.status} {data}")
        return data


async def join(hs: Homeserver, account: Account, room_id: str) -> None:
    await client_api(hs, account.access_token, "POST", f"/_matrix/client/v3/join/{room_id}")


async def exempt_from_rate_limits(hs: Homeserver, user_id: str) -> None:
    """The driver's own sends are not what is measured (as in tests/test_exactly_once.py)."""
    admin = await register(hs, "bench-admin-" + secrets.token_hex(3), admin=True)
    await client_api(
        hs,
        admin.access_token,
        "POST",
        f"/_synapse/admin/v1/users/{user_id}/override_ratelimit",
        {"messages_per_second": 0, "burst_count": 0},
    )


# --- the driver: a user who sends and notes when each reply arrives -----------------------


@dataclass
class Seen:
    at: float  # time.perf_counter() when the driver's sync delivered it
    room_id: str
    sender: str
    body: str
    in_reply_to: str | None


class Driver:
    """A MatrixUser (tests/support) plus an arrival clock on every notice it syncs."""

    def __init__(self, user: MatrixUser) -> None:
        self.user = user
        self.seen: list[Seen] = []
        self._arrived = asyncio.Condition()
        user.client.add_event_callback(self._on_notice, nio.RoomMessageNotice)

    @classmethod
    async def create(cls, hs: Homeserver, workdir: Path) -> Driver:
        localpart = "driver-" + secrets.token_hex(3)
        return cls(await MatrixUser.create(hs, localpart, workdir / localpart))

    @property
    def user_id(self) -> str:
        return self.user.user_id

    async def _on_notice(self, room: nio.MatrixRoom, event: nio.RoomMessageNotice) -> None:
        relates = event.source.get("content", {}).get("m.relates_to") or {}
        reply = (relates.get("m.in_reply_to") or {}).get("event_id")
        self.seen.append(Seen(time.perf_counter(), room.room_id, event.sender, event.body, reply))
        async with self._arrived:
            self._arrived.notify_all()

    async def send(self, room_id: str, text: str) -> tuple[str, float, int]:
        """The event ID, the moment just before the send, and the arrival index then."""
        mark = len(self.seen)
        started = time.perf_counter()
        event_id = await self.user.say(room_id, text)
        return event_id, started, mark

    async def wait(self, check: Callable[[], bool], seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds), self._arrived:
                await self._arrived.wait_for(check)
            return True
        except TimeoutError:
            return False

    def reply(self, bot: Contender, event_id: str, mark: int) -> Seen | None:
        """The bot's reply to event_id; for a bot that does not mark its replies as replies,
        its first notice that arrived after the send."""
        for seen in self.seen[mark:]:
            if seen.sender != bot.user_id or seen.room_id != bot.room_id:
                continue
            if not bot.replies_in_thread or seen.in_reply_to == event_id:
                return seen
        return None

    async def round_trip(self, bot: Contender, text: str, timeout: float = 30) -> float | None:  # noqa: ASYNC109
        """Milliseconds from the send to the reply seen by the driver; None if none came."""
        event_id, started, mark = await self.send(bot.room_id, text)
        found: list[Seen] = []

        def answered() -> bool:
            hit = self.reply(bot, event_id, mark)
            if hit is not None:
                found.append(hit)
            return hit is not None

        if not await self.wait(answered, timeout):
            return None
        return (found[0].at - started) * 1000

    def replies_from(self, bot: Contender, since: float = 0.0) -> list[Seen]:
        return [
            s
            for s in self.seen
            if s.sender == bot.user_id and s.room_id == bot.room_id and s.at >= since
        ]

    async def close(self) -> None:
        await self.user.close()


# --- contenders --------------------------------------------------------------------------


def vm_hwm_kb(pid: int) -> int | None:
    """Peak resident set size of a live process, from /proc/<pid>/status."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


@dataclass
class Contender:
    """One bot under test. Subclasses know how to set it up and how to start it."""

    name: str
    workdir: Path
    replies_in_thread: bool = True  # its reply carries m.relates_to.m.in_reply_to
    user_id: str = ""
    room_id: str = ""
    error: str | None = None
    process: subprocess.Popen[bytes] | None = None
    peak_rss_kb: list[int] = field(default_factory=list)

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def command(self, text: str) -> str:
        """What this contender is sent for a given Aegis command (peers: see subclasses)."""
        return text

    async def setup(self, hs: Homeserver, driver: Driver) -> None:
        raise NotImplementedError

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=self.env(),
        )
        log.close()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, hard: bool = False) -> None:
        """Notes the peak RSS, then SIGTERM (or SIGKILL), waiting for the process to go."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        peak = vm_hwm_kb(process.pid)
        if peak is not None:
            self.peak_rss_kb.append(peak)
        process.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace").splitlines()
            return "\n".join(text[-lines:])
        return "(no log)"

    async def ready(self, driver: Driver, probe: str, timeout: float = 90) -> None:  # noqa: ASYNC109
        """Joined and answering: a probe command gets its reply."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            with contextlib.suppress(RuntimeError):
                # A probe sent before the bot's first sync is history to it: ask again.
                if await driver.round_trip(self, self.command(probe), timeout=10) is not None:
                    return
        raise RuntimeError(f"{self.name} did not answer within {timeout:.0f}s:\n{self.log_tail()}")


@dataclass
class Floor(Contender):
    """bench/floor_echo.py: a bare matrix-nio client echoing every m.text as an m.notice."""

    account: Account | None = None
    hs_url: str = ""

    async def setup(self, hs: Homeserver, driver: Driver) -> None:
        self.hs_url = hs.url
        self.account = await register(hs, "floor-" + secrets.token_hex(3))
        self.user_id = self.account.user_id
        self.room_id = await driver.user.create_room(
            "floor", invite=[self.user_id], encrypted=False
        )
        await join(hs, self.account, self.room_id)

    def argv(self) -> list[str]:
        assert self.account is not None
        return [
            sys.executable,
            str(BENCH / "floor_echo.py"),
            "--homeserver",
            self.hs_url,
            "--user-id",
            self.user_id,
            "--device-id",
            self.account.device_id,
            "--state",
            str(self.workdir / "floor-state.json"),
        ]

    def env(self) -> dict[str, str]:
        assert self.account is not None
        return {**os.environ, "FLOOR_ACCESS_TOKEN": self.account.access_token}


@dataclass
class AegisBot(Contender):
    """`python -m bot run` (tests/support/bot_runner.BotProcess), on its own database."""

    database_url: str = ""
    setup_: BotSetup | None = None
    bot: BotProcess | None = None

    async def setup(self, hs: Homeserver, driver: Driver) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        account = await register(hs, "aegis-" + secrets.token_hex(3))
        setup = BotSetup(hs, self.workdir, self.database_url, device_id=account.device_id)
        setup.user_id, setup.password = account.user_id, account.password
        setup.roles = {driver.user_id: ROLES}
        await setup.create_rooms(driver.user, [], encrypted=False)
        setup.write_config(matrix={"access_token": account.access_token})
        self.setup_ = setup
        self.user_id = account.user_id
        self.room_id = setup.rooms["coordination"]

    def start(self) -> None:
        assert self.setup_ is not None
        self.bot = BotProcess(self.setup_.config_path, self.log_path)
        self.bot.start()
        self.process = self.bot.process


@dataclass
class ReminderBot(Contender):
    """matrix-reminder-bot from PyPI, answering `!help` (its replies are not threaded)."""

    replies_in_thread: bool = False

    def command(self, text: str) -> str:
        return "!help"

    async def setup(self, hs: Homeserver, driver: Driver) -> None:
        if not REMINDER_PYTHON.exists():
            raise RuntimeError(f"{REMINDER_PYTHON} missing: run `make bench-peers`")
        account = await register(hs, "reminder-" + secrets.token_hex(3))
        self.user_id = account.user_id
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "command_prefix": "!",
            "matrix": {
                "user_id": account.user_id,
                "user_password": account.password,
                "homeserver_url": hs.url,
                "device_id": account.device_id,
                "device_name": "reminder-bench",
            },
            "storage": {
                "database": f"sqlite://{self.workdir / 'reminder.db'}",
                "store_path": str(self.workdir / "store"),
            },
            "reminders": {"timezone": "Etc/UTC"},
            "allowlist": {"enabled": False, "regexes": []},
            "blocklist": {"enabled": False, "regexes": []},
            "logging": {
                "level": "INFO",
                "file_logging": {"enabled": False},  # its config reader needs both keys
                "console_logging": {"enabled": True},
            },
        }
        (self.workdir / "config.yaml").write_text(yaml.safe_dump(config))
        self.room_id = await driver.user.create_room(
            "reminder", invite=[self.user_id], encrypted=False
        )
        await join(hs, account, self.room_id)

    def argv(self) -> list[str]:
        return [
            str(REMINDER_PYTHON),
            "-m",
            "matrix_reminder_bot.main",
            str(self.workdir / "config.yaml"),
        ]


@dataclass
class Maubot(Contender):
    """maubot standalone from PyPI with the ten-line echo plugin in bench/maubot_echo/.

    handle_missed: maubot's own `ignore_first_sync` is true by default, which drops every
    event of the first sync after a start; the backlog run sets it false, the setting its
    documentation gives for a bot that must handle what was sent while it was down."""

    handle_missed: bool = True

    async def setup(self, hs: Homeserver, driver: Driver) -> None:
        if not MAUBOT_PYTHON.exists():
            raise RuntimeError(f"{MAUBOT_PYTHON} missing: run `make bench-peers`")
        account = await register(hs, "maubot-" + secrets.token_hex(3))
        self.user_id = account.user_id
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "user": {
                "credentials": {
                    "id": account.user_id,
                    "homeserver": hs.url,
                    "access_token": account.access_token,
                    "device_id": None,  # no E2EE: every contender runs in unencrypted rooms
                },
                "sync": True,
                "appservice": False,
                "autojoin": False,
                "displayname": "disable",
                "avatar_url": "disable",
                "ignore_initial_sync": True,
                "ignore_first_sync": not self.handle_missed,
            },
            "server": {"hostname": "127.0.0.1", "port": 0, "public_url": hs.url, "base_path": "/"},
            "database": f"sqlite:{self.workdir / 'maubot.db'}",
            "plugin_config": {},
            "logging": {
                "version": 1,
                "formatters": {"plain": {"format": LOG_FORMAT}},
                "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
                "root": {"level": "INFO", "handlers": ["console"]},
            },
        }
        (self.workdir / "config.yaml").write_text(yaml.safe_dump(config))
        self.room_id = await driver.user.create_room(
            "maubot", invite=[self.user_id], encrypted=False
        )
        await join(hs, account, self.room_id)

    def argv(self) -> list[str]:
        return [
            str(MAUBOT_PYTHON),
            "-m",
            "maubot.standalone",
            "-c",
            str(self.workdir / "config.yaml"),
            "-m",
            str(ECHO_PLUGIN),
        ]


async def prepare(contender: Contender, hs: Homeserver, driver: Driver, probe: str) -> bool:
    """Set up, start and wait for the first answer; a failure is recorded on the contender."""
    try:
        await contender.setup(hs, driver)
        contender.start()
        await contender.ready(driver, probe)
        return True
    except Exception as exc:
        contender.error = f"{type(exc).__name__}: {exc}"
        contender.stop()
        print(f"!! {contender.name}: {contender.error}", file=sys.stderr)
        return False


def peak_rss_mb(contender: Contender) -> float | None:
    return max(contender.peak_rss_kb) / 1024 if contender.peak_rss_kb else None
