"""An upgrade against a real Synapse: the E2EE store and the config of the previous
version (store under nio's default key, files 0644/0755, no matrix.store_key, no audit key,
no audit room) start the bot, which warns, keeps its device and room keys, answers a
command, and leaves every file it keeps private and the store under its own key. (In
process, to save CI time; the umask of the real `aegis` process is in test_at_rest.py.)

One homeserver run on SQLite only: the store is nio's SQLite file whatever the database,
and the database file's mode only exists on SQLite."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any

import nio
import pytest
import yaml
from nio.store import DefaultStore

from tests.conftest import UserFactory
from tests.support.bot_runner import BotSetup, InProcessBot
from tests.support.homeserver import Homeserver
from tests.support.world import build_world

BEFORE = "said before the upgrade"


async def previous_version(setup: BotSetup, room_id: str) -> nio.AsyncClient:
    """The bot's device as the previous version left it: logged in, keys uploaded, joined,
    its store under nio's default key (no pickle_key given)."""
    store = setup.workdir / "store"
    store.mkdir()
    client = nio.AsyncClient(
        setup.homeserver.url,
        setup.user_id,
        device_id=setup.device_id,
        store_path=str(store),
        config=nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False),
    )
    assert isinstance(await client.login(setup.password, device_name="Aegis"), nio.LoginResponse)
    await client.keys_upload()
    assert isinstance(await client.join(room_id), nio.JoinResponse)
    await client.sync(timeout=0, full_state=True)
    return client


async def receive_room_key(client: nio.AsyncClient, room_id: str, event_id: str) -> dict[str, Any]:
    """Syncs until the room key of `event_id` arrived (nio stores it on arrival); the event's
    encrypted content, as the homeserver keeps it."""
    method, path = nio.Api.room_get_event(client.access_token, room_id, event_id)
    sealed: dict[str, Any] = (await (await client.send(method, path)).json())["content"]
    assert client.olm is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if client.olm.inbound_group_store.get(room_id, sealed["sender_key"], sealed["session_id"]):
            return sealed
        await client.sync(timeout=1000)
    raise AssertionError("the previous version never received the room key")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def loosen(store: Path, database: Path) -> None:
    """The modes the previous version's files got from a usual umask (022)."""
    database.touch()
    for path in (store, *store.iterdir(), database):
        path.chmod(0o755 if path.is_dir() else 0o644)


def private(store: Path, key_file: Path, database: Path, device_id: str) -> bool:
    assert mode(store) == 0o700
    kept = [*store.iterdir(), key_file, database]
    kept += [p for p in database.parent.iterdir() if p.name.startswith(database.name + "-")]
    assert any(p.name.endswith(f"_{device_id}.db") for p in kept)
    assert {p.name: mode(p) for p in kept} == {p.name: 0o600 for p in kept}
    return True


async def test_a_previous_version_upgrades_with_warnings_keys_kept_and_files_private(
    homeserver: Homeserver,
    user_factory: UserFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    database = tmp_path / "aegis.db"
    world = await build_world(homeserver, user_factory, f"sqlite+aiosqlite:///{database}", tmp_path)
    # The previous version sat in approvals; it joins coordination now, on invite, which
    # tells that it is up (a command sent before that would be history to a first start).
    setup, room = world.setup, world.setup.rooms["approvals"]
    old = await previous_version(setup, room)
    assert old.olm is not None
    identity = dict(old.olm.account.identity_keys)
    await world.alice.wait_for_member(room, setup.user_id)
    before = await world.alice.say(room, BEFORE)
    sealed = await receive_room_key(old, room, before)
    await old.close()
    store, key_file = setup.workdir / "store", tmp_path / "store.key"
    audit_key_file = setup.workdir / "audit.key"  # beside the store, as the bot generates it
    loosen(store, database)

    config = setup.write_config()  # as before: no store key, no audit key, no audit room
    written = yaml.safe_load(config.read_text())
    assert "store_key" not in written["matrix"] and "audit" not in written["rooms"]
    assert not {"key", "key_file"} & set(written.get("audit", {}))
    assert "AEGIS_MATRIX__STORE_KEY" not in os.environ and "AEGIS_AUDIT__KEY" not in os.environ
    bot = InProcessBot(config)
    with caplog.at_level(logging.WARNING):
        await bot.start()
        try:
            await world.admin.wait_for_member(world.coordination, setup.user_id, timeout=60)
            command = await world.alice.say(world.coordination, "!ping after the upgrade")
            await world.alice.reply_to(world.coordination, command, timeout=60)
        finally:
            await bot.stop()
    output = "\n".join(record.getMessage() for record in caplog.records)
    for line in (
        f"matrix.store_key is not set: generated a random key for the E2EE store in {key_file}",
        f"re-encrypted it with the key from {key_file}, keeping device {setup.device_id}",
        f"{store} had mode 0755, looser than 0700: set to 0700",
        f"{database} had mode 0644, looser than 0600: set to 0600",
        f"no audit.key configured: generated {audit_key_file} (mode 0600)",
    ):
        assert line in output, output[-3000:]

    # Every file the bot keeps is private.
    assert private(store, key_file, database, setup.device_id)
    assert stat.S_IMODE(audit_key_file.stat().st_mode) == 0o600

    # The store opens with its key only: same device, and the room key from before decrypts.
    key = key_file.read_text().strip()
    for wrong in ("DEFAULT_KEY", "a key of more than thirty-two characters"):
        other = DefaultStore(setup.user_id, setup.device_id, str(store), wrong)
        with pytest.raises(ValueError):
            other.load_account()
        other.database.close()
    kept_store = DefaultStore(setup.user_id, setup.device_id, str(store), key)
    account = kept_store.load_account()
    assert account is not None and account.identity_keys == identity
    room_key = kept_store.load_inbound_group_sessions().get(
        room, sealed["sender_key"], sealed["session_id"]
    )
    kept_store.database.close()
    assert room_key is not None
    plaintext, _ = room_key.decrypt(sealed["ciphertext"])
    assert json.loads(plaintext)["content"]["body"] == BEFORE
