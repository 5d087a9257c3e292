"""Run Aegis locally against a private Synapse with demo users and rooms, in one command.

Everything lives under <repo>/.dev (git-ignored) and is reused by the next run, so demo
passwords, room ids and the bot's crypto store stay stable between sessions.

    .venv/bin/python scripts/dev.py            # Synapse + provisioning + bot
    .venv/bin/python scripts/dev.py --no-bot   # Synapse + provisioning only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote

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


@dataclass
class DemoEnv:
    base_dir: Path
    homeserver: Homeserver
    config_path: Path
    bot_user_id: str
    bot_password: str
    # localpart -> (user_id, password)
    users: dict[str, tuple[str, str]] = field(default_factory=dict)
    # config key (coordination, ...) -> room id
    rooms: dict[str, str] = field(default_factory=dict)


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


def _init_state(base_dir: Path, port: int | None) -> tuple[Path, dict[str, Any]]:
    """Load or create state.json: port and passwords are chosen once, then remembered."""
    base_dir = base_dir.absolute()
    base_dir.mkdir(parents=True, exist_ok=True)
    path = base_dir / "state.json"
    state: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    state["port"] = _choose_port(state, port)
    passwords = state.setdefault("passwords", {})
    for localpart in [BOT_LOCALPART, *DEMO_ROLES]:
        passwords.setdefault(localpart, secrets.token_urlsafe(12))
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


def _write_bot_config(env: DemoEnv) -> None:
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
        "bot": {"prefix": "!", "timezone": "Europe/Brussels"},
        "rooms": env.rooms,
        "roles": {env.users[lp][0]: roles for lp, roles in DEMO_ROLES.items()},
        "allowed_servers": [SERVER_NAME],
        "logging": {"level": "INFO", "json": False},
    }
    env.config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    env.config_path.chmod(0o600)


async def prepare(base_dir: Path, port: int | None = None) -> DemoEnv:
    """Start Synapse and provision users, rooms and the bot config; leaves Synapse running.

    The caller owns env.homeserver and must stop() it.
    """
    base_dir, state = _init_state(base_dir, port)
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
        )
        for localpart in DEMO_ROLES:
            user_id = await hs.register(
                localpart, passwords[localpart], admin=localpart == ROOM_CREATOR
            )
            env.users[localpart] = (user_id, passwords[localpart])
        env.rooms = await _provision_rooms(hs, env, state.get("rooms", {}))
        state["rooms"] = env.rooms
        _save_state(state_path, state)
        _write_bot_config(env)
    except BaseException:
        hs.stop()
        raise
    return env


def _print_summary(env: DemoEnv) -> None:
    print(f"\nHomeserver: {env.homeserver.url}  (server name {SERVER_NAME})")
    print(f"Bot config: {env.config_path}")
    print("Demo logins (deliberately printed: local throw-away accounts):")
    for localpart, (user_id, password) in env.users.items():
        roles = ", ".join(DEMO_ROLES[localpart])
        print(f"  {user_id:<22} {password}   [{roles}]")
    print("Rooms:")
    for key, room_id in env.rooms.items():
        print(f"  {key:<14} {room_id}")
    print()


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
        _print_summary(env)
        if args.no_bot:
            print("Synapse is running; Ctrl-C to stop.")
            while True:
                signal.pause()
        command = [sys.executable, "-m", "bot", "run", "-c", str(env.config_path)]
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
