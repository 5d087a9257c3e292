"""Run Aegis locally against a private Synapse with demo users and rooms, in one command.

Everything lives under <repo>/.dev (git-ignored) and is reused by the next run, so demo
passwords, room ids and the bot's crypto store stay stable from one run to the next.

The bot reads three files, later ones merged over earlier ones (`aegis run -c … -c … -c …`):
- aegis.yaml, generated once: homeserver, rooms, roles, the demo meetings, the web server.
  It is never overwritten once edited; a fresh version then goes beside it.
- demo-meeting.yaml, written at each start: a daily "briefing" a few minutes ahead, so a
  reminder shows up at once.
- overrides.yaml, yours: created empty once, never touched again.

    .venv/bin/python scripts/dev.py            # Synapse + provisioning + bot
    .venv/bin/python scripts/dev.py --no-bot   # Synapse + provisioning only
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.homeserver import Homeserver, free_port, port_is_free  # noqa: E402

SERVER_NAME = "aegis.test"
PREFERRED_PORT = 8008
BOT_LOCALPART = "aegis"
BOT_DEVICE_ID = "AEGISDEV"
SETUP_DEVICE_ID = "AEGIS-DEV-SETUP"
ROOM_CREATOR = "admin"
DEMO_ROLES: dict[str, list[str]] = {
    "alice": ["liaison"],
    "bob": ["analyst"],
    "mina": ["approver"],
    "marc": ["approver"],
    "paul": ["police"],
    "admin": ["admin", "liaison"],
}
ROOMS: dict[str, str] = {
    "coordination": "Aegis coordination",
    "approvals": "Aegis approvals",
    "operations": "Aegis operations",
    "early_warning": "Aegis early warning",
}
# Need to know: a member whose role may not read what a room gets would have the bot
# withhold it there. The police read execution orders, so they sit in operations only.
DEMO_SEATS: dict[str, tuple[str, ...]] = {"paul": ("operations",)}
BOT_STOP_TIMEOUT = 15.0
TIMEZONE = "Europe/Brussels"
PREFERRED_HTTP_PORT = 8080
# The meetings a coordination team keeps (docs/domain.md), in local time.
MEETINGS: dict[str, dict[str, Any]] = {
    "weekly": {
        "rrule": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=10;BYMINUTE=0",
        "room": "coordination",
        "agenda": "weekly",
        "remind_before": ["1d", "1h"],
    },
    "ambassades": {
        "rrule": "FREQ=MONTHLY;BYDAY=1TU;BYHOUR=14;BYMINUTE=0",
        "room": "coordination",
        "agenda": "monthly",
        "remind_before": ["3d", "1h"],
    },
    "digest": {
        "rrule": "FREQ=DAILY;BYHOUR=8;BYMINUTE=0",
        "room": "coordination",
        "agenda": "daily",
        "remind_before": ["0m"],
    },
}
# The briefing starts this long after `make dev` (rounded up to a whole minute); its first
# reminder falls due REMINDER_AFTER after the files are written (the bot is up by then), a
# second one a minute before the start.
BRIEFING_AHEAD = timedelta(minutes=3)
REMINDER_AFTER = timedelta(seconds=15)
DEMO_PARTNER = ("Demo Energy", "energy")
GENERATED_HEADER = """\
# Generated once by `make dev` (scripts/dev.py). Edit it if you like: it is never
# overwritten once changed. Changes you want to keep apart go in overrides.yaml, merged over
# this file (and over demo-meeting.yaml) at each start.
"""
OVERRIDES_TEXT = """\
# Your changes to the `make dev` configuration: merged over aegis.yaml and demo-meeting.yaml
# at each start (sections key by key; lists and other values replace). `make dev` creates
# this file once and never writes it again. For example:
#
# bot:
#   prefix: "?"
# meetings:
#   weekly:
#     rrule: FREQ=WEEKLY;BYDAY=TU;BYHOUR=9;BYMINUTE=30
"""


@dataclass
class DemoEnv:
    base_dir: Path
    homeserver: Homeserver
    config_path: Path
    bot_user_id: str
    bot_password: str
    http_port: int
    partner_token: str = ""
    # When the demo briefing starts, in local time.
    briefing_at: datetime | None = None
    # localpart -> (user_id, password)
    users: dict[str, tuple[str, str]] = field(default_factory=dict)
    # config key (coordination, ...) -> room id
    rooms: dict[str, str] = field(default_factory=dict)

    @property
    def demo_meeting_path(self) -> Path:
        return self.base_dir / "demo-meeting.yaml"

    @property
    def overrides_path(self) -> Path:
        return self.base_dir / "overrides.yaml"

    @property
    def config_files(self) -> list[Path]:
        """What the bot reads, in merge order: the user's overrides come last."""
        return [self.config_path, self.demo_meeting_path, self.overrides_path]

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


class _Client:
    """Just enough client-server API to provision rooms; nio would be overkill here."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self._session = session
        self._base = f"{base_url}/_matrix/client/v3"
        self._headers = {"Authorization": f"Bearer {token}"}

    async def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        async with self._session.request(
            method, self._base + path, json=body, headers=self._headers
        ) as resp:
            return resp.status, await resp.json()

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        status, data = await self.request(method, path, body)
        if status != 200:
            raise RuntimeError(
                f"{method} {path}: {status} {data.get('errcode')} {data.get('error')}"
            )
        return data

    async def membership(self, room_id: str, user_id: str) -> str | None:
        path = f"/rooms/{quote(room_id)}/state/m.room.member/{quote(user_id)}"
        status, data = await self.request("GET", path)
        return str(data["membership"]) if status == 200 else None


def _init_state(
    base_dir: Path, port: int | None, http_port: int | None
) -> tuple[Path, dict[str, Any]]:
    """Load or create state.json: port and passwords are chosen once, then remembered."""
    base_dir = base_dir.absolute()
    base_dir.mkdir(parents=True, exist_ok=True)
    path = base_dir / "state.json"
    state: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    state["port"] = _choose_port(state, port)
    if http_port:
        state["http_port"] = http_port
    elif not state.get("http_port"):
        taken = {state["port"]}
        state["http_port"] = (
            PREFERRED_HTTP_PORT
            if PREFERRED_HTTP_PORT not in taken and port_is_free(PREFERRED_HTTP_PORT)
            else free_port()
        )
    passwords = state.setdefault("passwords", {})
    for localpart in [BOT_LOCALPART, *DEMO_ROLES]:
        passwords.setdefault(localpart, secrets.token_urlsafe(12))
    http_secrets = state.setdefault("http", {})
    http_secrets.setdefault("token", secrets.token_urlsafe(24))
    http_secrets.setdefault("session_key", secrets.token_urlsafe(32))
    _save_state(path, state)
    return base_dir, state


def _save_state(path: Path, state: dict[str, Any]) -> None:
    path.write_text(json.dumps(state, indent=2) + "\n")
    path.chmod(0o600)  # demo passwords, including the bot's


def _choose_port(state: dict[str, Any], requested: int | None) -> int:
    if requested:
        return requested
    if state.get("port"):
        return int(state["port"])
    return PREFERRED_PORT if port_is_free(PREFERRED_PORT) else free_port()


async def _provision_rooms(
    hs: Homeserver, env: DemoEnv, known_rooms: dict[str, str]
) -> dict[str, str]:
    """Create missing rooms, then make every demo user a member and invite the bot.

    Idempotent on purpose: a second run only repairs what is missing.
    """
    tokens = {
        localpart: await hs.login(localpart, password, SETUP_DEVICE_ID)
        for localpart, (_, password) in env.users.items()
    }
    rooms: dict[str, str] = {}
    async with aiohttp.ClientSession() as session:
        clients = {lp: _Client(session, hs.url, token) for lp, token in tokens.items()}
        creator = clients[ROOM_CREATOR]
        creator_id = env.users[ROOM_CREATOR][0]
        for key, name in ROOMS.items():
            room_id = known_rooms.get(key)
            if room_id is None or await creator.membership(room_id, creator_id) != "join":
                created = await creator.call(
                    "POST",
                    "/createRoom",
                    {
                        "name": name,
                        "preset": "private_chat",
                        "initial_state": [
                            {
                                "type": "m.room.encryption",
                                "state_key": "",
                                "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                            }
                        ],
                    },
                )
                room_id = str(created["room_id"])
            rooms[key] = room_id
            for localpart, (user_id, _) in env.users.items():
                if key not in DEMO_SEATS.get(localpart, tuple(ROOMS)):
                    continue
                membership = await creator.membership(room_id, user_id)
                if membership == "join":
                    continue
                if membership != "invite":
                    await creator.call(
                        "POST", f"/rooms/{quote(room_id)}/invite", {"user_id": user_id}
                    )
                await clients[localpart].call("POST", f"/rooms/{quote(room_id)}/join", {})
            if await creator.membership(room_id, env.bot_user_id) not in ("join", "invite"):
                await creator.call(
                    "POST", f"/rooms/{quote(room_id)}/invite", {"user_id": env.bot_user_id}
                )
        # The setup devices are throw-away; don't let them pile up in users' device lists.
        for client in clients.values():
            await client.call("POST", "/logout", {})
    return rooms


def _bot_config(env: DemoEnv, http_secrets: dict[str, str]) -> str:
    bot_dir = env.base_dir / "bot"
    (bot_dir / "store").mkdir(parents=True, exist_ok=True)
    config = {
        "matrix": {
            "homeserver": env.homeserver.url,
            "user_id": env.bot_user_id,
            "password": env.bot_password,
            "device_id": BOT_DEVICE_ID,
            "store_path": str(bot_dir / "store"),
        },
        "database": {"url": f"sqlite+aiosqlite:///{bot_dir / 'aegis.db'}"},
        "bot": {"prefix": "!", "timezone": TIMEZONE},
        "rooms": env.rooms,
        "roles": {env.users[lp][0]: roles for lp, roles in DEMO_ROLES.items()},
        "allowed_servers": [SERVER_NAME],
        "meetings": MEETINGS,
        "http": {
            "listen": f"127.0.0.1:{env.http_port}",
            "token": http_secrets["token"],
            "session_key": http_secrets["session_key"],
        },
        "logging": {"level": "INFO", "json": False},
    }
    return GENERATED_HEADER + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _write_generated(path: Path, text: str, state: dict[str, Any]) -> Path | None:
    """Writes the generated config, unless the user has edited the file since it was written.

    An edited file is kept as it is. Only when the generated content itself changed (rooms
    made again, say) does a fresh version go beside it; its path is returned the first time,
    so the user is told once."""
    fresh = _digest(text)
    if path.exists():
        current = _digest(path.read_text(encoding="utf-8"))
        if current == fresh:
            return None
        if current != state.get("config_sha256"):  # the user's own version
            if fresh == state.get("config_sha256"):
                return None
            beside = path.with_name(path.stem + ".generated.yaml")
            if beside.exists() and beside.read_text(encoding="utf-8") == text:
                return None  # said once already
            beside.write_text(text, encoding="utf-8")
            beside.chmod(0o600)
            return beside
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)  # the bot's password and the web secrets
    state["config_sha256"] = fresh
    return None


def briefing_time(now: datetime, ahead: timedelta = BRIEFING_AHEAD) -> datetime:
    """`ahead` from now in local time, rounded up to the next whole minute."""
    at = now.astimezone(ZoneInfo(TIMEZONE)) + ahead
    if at.second or at.microsecond:
        at = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return at


def _write_demo_meeting(env: DemoEnv, now: datetime) -> None:
    """A daily briefing a few minutes from now, so the first reminder is due at once."""
    at = briefing_time(now)
    first = int((at - now - REMINDER_AFTER).total_seconds())
    meeting = {
        "rrule": f"FREQ=DAILY;BYHOUR={at.hour};BYMINUTE={at.minute}",
        "room": "coordination",
        "agenda": "daily",
        "remind_before": [f"{first}s", "1m"],
    }
    header = (
        "# Written by `make dev` at each start: a daily briefing a few minutes ahead, so a\n"
        "# reminder shows up at once. Change it in overrides.yaml: this file is rewritten.\n"
    )
    text = yaml.safe_dump({"meetings": {"briefing": meeting}}, sort_keys=False)
    env.demo_meeting_path.write_text(header + text, encoding="utf-8")
    env.briefing_at = at


def _write_overrides(env: DemoEnv) -> None:
    if not env.overrides_path.exists():
        env.overrides_path.write_text(OVERRIDES_TEXT, encoding="utf-8")


def _aegis(env: DemoEnv, *args: str) -> list[str]:
    command = [sys.executable, "-m", "bot", *args]
    for path in env.config_files:
        command += ["-c", str(path)]
    return command


def _demo_partner(env: DemoEnv, state: dict[str, Any]) -> str:
    """A company registered once with `aegis partner add`, so the report form can be tried."""
    if state.get("partner_token"):
        return str(state["partner_token"])
    name, sector = DEMO_PARTNER
    done = subprocess.run(
        _aegis(env, "partner", "add", name, "--sector", sector),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    token = next(
        line.rsplit(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("API token")
    )
    state["partner_token"] = token
    return token


async def prepare(base_dir: Path, port: int | None = None, http_port: int | None = None) -> DemoEnv:
    """Start Synapse and provision users, rooms and the bot config; leaves Synapse running.

    The caller owns env.homeserver and must stop() it.
    """
    base_dir, state = _init_state(base_dir, port, http_port)
    state_path = base_dir / "state.json"
    passwords: dict[str, str] = state["passwords"]

    hs = Homeserver(base_dir / "synapse", server_name=SERVER_NAME, port=state["port"])
    try:
        hs.start()
        env = DemoEnv(
            base_dir=base_dir,
            homeserver=hs,
            config_path=base_dir / "aegis.yaml",
            bot_user_id=await hs.register(BOT_LOCALPART, passwords[BOT_LOCALPART]),
            bot_password=passwords[BOT_LOCALPART],
            http_port=state["http_port"],
        )
        for localpart in DEMO_ROLES:
            user_id = await hs.register(
                localpart, passwords[localpart], admin=localpart == ROOM_CREATOR
            )
            env.users[localpart] = (user_id, passwords[localpart])
        env.rooms = await _provision_rooms(hs, env, state.get("rooms", {}))
        state["rooms"] = env.rooms
        kept = _write_generated(env.config_path, _bot_config(env, state["http"]), state)
        if kept is not None:
            print(
                f"{env.config_path} was edited, so it was kept; the newly generated "
                f"configuration is in {kept}. Compare them if the bot does not start."
            )
        _write_demo_meeting(env, datetime.now(ZoneInfo(TIMEZONE)))
        _write_overrides(env)
        env.partner_token = _demo_partner(env, state)
        _save_state(state_path, state)
    except BaseException:
        hs.stop()
        raise
    return env


def summary(env: DemoEnv) -> str:
    """What a newcomer needs: where to connect, where the web parts are, what to type."""
    tz = ZoneInfo(TIMEZONE)
    lines = [
        f"Homeserver: {env.homeserver.url}  (server name {SERVER_NAME})",
        "Bot config: " + " + ".join(str(p) for p in env.config_files),
        f"  (your own changes: {env.overrides_path}; it is never overwritten)",
        "Demo logins (deliberately printed: local throw-away accounts):",
    ]
    for localpart, (user_id, password) in env.users.items():
        roles = ", ".join(DEMO_ROLES[localpart])
        lines.append(f"  {user_id:<22} {password}   [{roles}]")
    lines.append("Rooms:")
    lines += [f"  {key:<14} {ROOMS[key]:<22} {room_id}" for key, room_id in env.rooms.items()]
    token = env.partner_token
    lines += [
        "On the web:",
        f"  report form  {env.http_url}/report   (API token of {DEMO_PARTNER[0]}: {token})",
        f"  partner API  {env.http_url}/api/v1   (OpenAPI: {env.http_url}/api/v1/openapi.json)",
        f"  metrics      {env.http_url}/metrics   (health: {env.http_url}/readyz)",
    ]
    if env.briefing_at is not None:
        at = env.briefing_at.astimezone(tz)
        lines += [
            "Meetings: weekly (Monday 10:00), ambassades (first Tuesday of the month, 14:00),",
            f"  digest (daily 08:00), and a demo briefing daily at {at:%H:%M} ({TIMEZONE}):",
            f"  its first reminder comes in {ROOMS['coordination']!r} in under a minute, another "
            f'at {at - timedelta(minutes=1):%H:%M}, then "starting now".',
        ]
    year = datetime.now(tz).year
    alice = env.users["alice"][0]
    lines += [
        f"First three things to type, logged in as {alice} in {ROOMS['coordination']!r}:",
        "  1. !help",
        '  2. !dossier open person "Visit of the President of X" category=head-of-state '
        'start=tomorrow end="in 3 days" basis=status',
        f"  3. !measure propose D-{year}-0001 close-protection start=tomorrow "
        'end="in 3 days" visit programme includes public appearances',
        f"     (then, as {env.users['mina'][0]}, tap ✅ on the prompt in {ROOMS['approvals']!r})",
    ]
    return "\n".join(lines)


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM takes the same clean-up path as Ctrl-C."""
    raise KeyboardInterrupt


def _stop_bot(bot: subprocess.Popen[bytes]) -> None:
    if bot.poll() is not None:
        return
    bot.send_signal(signal.SIGTERM)
    try:
        bot.wait(timeout=BOT_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        bot.kill()
        bot.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=REPO_ROOT / ".dev", help="state directory")
    parser.add_argument("--port", type=int, help="homeserver port (default: 8008 or remembered)")
    parser.add_argument("--no-bot", action="store_true", help="only run and provision Synapse")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    env = asyncio.run(prepare(args.dir, args.port))
    bot: subprocess.Popen[bytes] | None = None
    try:
        print("\n" + summary(env) + "\n", flush=True)
        if args.no_bot:
            print("Synapse is running; Ctrl-C to stop.")
            while True:
                signal.pause()
        command = _aegis(env, "run")
        print("Starting bot:", " ".join(command), flush=True)
        bot = subprocess.Popen(command, cwd=REPO_ROOT)
        code = bot.wait()
        print(f"Bot exited with status {code}.")
        return code
    except KeyboardInterrupt:
        print("\nStopping…")
        return 0
    finally:
        if bot is not None:
            _stop_bot(bot)
        env.homeserver.stop()


if __name__ == "__main__":
    sys.exit(main())
