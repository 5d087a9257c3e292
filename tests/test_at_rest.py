"""Secrets and files at rest, without a homeserver: the store key (configured, or generated
into a private file and reused), the re-encryption of a store written under nio's default
key, and the modes of the files the bot keeps. The real start against Synapse is in
tests/test_at_rest_e2e.py."""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from nio.crypto import (
    InboundGroupSession,
    OlmAccount,
    OutboundGroupSession,
    OutboundSession,
)
from nio.store import DefaultStore

from bot import at_rest
from bot.app import Aegis
from bot.cli import main
from bot.store_key import NIO_DEFAULT_KEY, StoreKeyError, adopt_key, store_file
from config import ConfigError, Settings, load_settings
from config.key_files import Key, store_key, store_key_file
from config.settings import MatrixSettings

USER, DEVICE, ROOM = "@aegis:example.org", "AEGIS", "!room:example.org"
KEY = "k" * 40
ROOMS = {
    "coordination": "!a:example.org",
    "approvals": "!b:example.org",
    "operations": "!c:example.org",
    "early_warning": "!d:example.org",
}


@pytest.fixture
def umask_022() -> Iterator[None]:
    """What a shell usually hands a process: files 0644, directories 0755."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def matrix(tmp_path: Path, **extra: str) -> MatrixSettings:
    return MatrixSettings(
        homeserver="https://matrix.example.org",
        user_id=USER,
        device_id=DEVICE,
        password="x",
        store_path=tmp_path / "store",
        **extra,  # type: ignore[arg-type]
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the key ----------------------------------------------------------------------------


def test_a_configured_store_key_is_used_and_no_key_file_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AEGIS_MATRIX__STORE_KEY", KEY)
    settings = Settings(
        matrix={"homeserver": "https://m.example.org", "user_id": USER, "password": "x"},
        rooms=ROOMS,
    )
    assert settings.matrix.store_key is not None
    key = store_key(settings.matrix)
    assert (key.value, key.source, key.generated) == (KEY, "matrix.store_key", False)
    assert KEY not in repr(key) and KEY not in repr(settings)


def test_a_short_store_key_stops_the_start_naming_the_key_without_echoing_it(
    tmp_path: Path,
) -> None:
    config = {
        "matrix": {"homeserver": "https://m.example.org", "user_id": USER, "password": "x"},
        "rooms": ROOMS,
    }
    config["matrix"]["store_key"] = "too-short-a-key"
    path = tmp_path / "aegis.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    report = raised.value.report()
    assert "matrix.store_key: matrix.store_key must have at least 32 characters" in report
    assert "too-short-a-key" not in report


def test_without_a_store_key_one_is_generated_beside_the_store_0600_and_reused(
    tmp_path: Path, umask_022: None
) -> None:
    settings = matrix(tmp_path)
    first = store_key(settings)
    path = store_key_file(settings)
    assert path == tmp_path / "store.key"
    assert first.generated and first.source == str(path)
    assert len(first.value) >= 32 and path.read_text().strip() == first.value
    assert mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["store.key"]  # no draft left behind
    again = store_key(settings)
    assert (again.value, again.generated) == (first.value, False)


def test_an_unusable_key_file_stops_the_start_naming_the_file(tmp_path: Path) -> None:
    settings = matrix(tmp_path)
    store_key_file(settings).write_text("short\n")
    with pytest.raises(ConfigError) as raised:
        store_key(settings)
    assert raised.value.path == store_key_file(settings)
    assert "matrix.store_key" in raised.value.report() and "at least 32" in raised.value.report()


# --- the store under its key ------------------------------------------------------------


def previous_version_store(settings: MatrixSettings) -> tuple[dict[str, str], str, str, str]:
    """A store as every Aegis before the store key wrote it, under nio's default key: the
    account, an Olm session and a room key. (identity keys, Olm session ID, room key's
    session ID, a message only that room key decrypts)"""
    settings.store_path.mkdir()
    store = DefaultStore(USER, DEVICE, str(settings.store_path), NIO_DEFAULT_KEY)
    account = OlmAccount()
    store.save_account(account)
    peer = OlmAccount()
    peer.generate_one_time_keys(1)
    one_time_key = next(iter(peer.one_time_keys["curve25519"].values()))
    olm = OutboundSession(account, peer.identity_keys["curve25519"], one_time_key)
    store.save_session(peer.identity_keys["curve25519"], olm)
    outbound = OutboundGroupSession()
    outbound.shared = True
    room_key = InboundGroupSession(
        outbound.session_key, "ed25519-of-sender", "curve-of-sender", ROOM
    )
    store.save_inbound_group_session(room_key)
    store.database.close()
    return account.identity_keys, olm.id, room_key.id, outbound.encrypt("before the upgrade")


def open_store(settings: MatrixSettings, key: str) -> DefaultStore:
    return DefaultStore(USER, DEVICE, os.fspath(settings.store_path), key)


def test_a_default_key_store_is_reencrypted_and_keeps_its_device_and_room_keys(
    tmp_path: Path,
) -> None:
    settings = matrix(tmp_path)
    identity, olm_id, room_key_id, ciphertext = previous_version_store(settings)

    assert adopt_key(settings, KEY, "matrix.store_key", [NIO_DEFAULT_KEY])

    store = open_store(settings, KEY)
    account = store.load_account()
    assert account is not None and account.identity_keys == identity
    assert olm_id in {s.id for sessions in store.load_sessions().values() for s in sessions}
    room_key = store.load_inbound_group_sessions().get(ROOM, "curve-of-sender", room_key_id)
    assert room_key is not None
    assert room_key.decrypt(ciphertext)[0] == "before the upgrade"
    store.database.close()

    # The store now opens only with its key.
    for wrong in (NIO_DEFAULT_KEY, "another key of forty characters, not ours"):
        other = open_store(settings, wrong)
        with pytest.raises(ValueError):
            other.load_account()
        other.database.close()

    # Once is enough; a store under a key the bot was not given is refused and left alone.
    assert not adopt_key(settings, KEY, "matrix.store_key", [NIO_DEFAULT_KEY])
    with pytest.raises(StoreKeyError, match="another key"):
        adopt_key(settings, "x" * 40, "matrix.store_key", [NIO_DEFAULT_KEY])
    store = open_store(settings, KEY)
    assert store.load_account() is not None
    store.database.close()


def with_database(settings: MatrixSettings, tmp_path: Path) -> Settings:
    return Settings(
        matrix=settings,
        rooms=ROOMS,
        database={"url": f"sqlite+aiosqlite:///{tmp_path / 'aegis.db'}"},
    )


def test_a_store_under_its_generated_key_moves_to_a_store_key_set_later(tmp_path: Path) -> None:
    without = matrix(tmp_path)
    identity, *_ = previous_version_store(without)
    generated = store_key(without)
    at_rest.prepare(with_database(without, tmp_path), generated)  # nio's default -> the file's
    configured = matrix(tmp_path, store_key=KEY)
    at_rest.prepare(with_database(configured, tmp_path), store_key(configured))  # -> KEY
    store = open_store(configured, KEY)
    account = store.load_account()
    assert account is not None and account.identity_keys == identity
    store.database.close()
    stale = open_store(configured, generated.value)
    with pytest.raises(ValueError):
        stale.load_account()
    stale.database.close()


def test_a_stale_key_file_never_stops_a_start_with_a_configured_key(tmp_path: Path) -> None:
    configured = matrix(tmp_path, store_key=KEY)
    previous_version_store(configured)
    adopt_key(configured, KEY, "matrix.store_key", [NIO_DEFAULT_KEY])
    store_key_file(configured).write_text("short\n")
    at_rest.prepare(with_database(configured, tmp_path), store_key(configured))
    store = open_store(configured, KEY)
    assert store.load_account() is not None
    store.database.close()


async def test_a_start_on_a_store_under_another_key_stops_naming_the_store(
    tmp_path: Path,
) -> None:
    """`aegis run` turns this into exit code 2 with the message (bot/cli.py)."""
    settings = matrix(tmp_path)
    previous_version_store(settings)
    adopt_key(settings, "y" * 40, "matrix.store_key", [NIO_DEFAULT_KEY])
    config = {
        "matrix": {
            "homeserver": "http://127.0.0.1:9",
            "user_id": USER,
            "device_id": DEVICE,
            "password": "not-used",
            "store_path": str(settings.store_path),
            "store_key": KEY,
        },
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'aegis.db'}"},
        "rooms": ROOMS,
        "http": {"listen": "127.0.0.1:0"},
    }
    path = tmp_path / "aegis.yaml"
    path.write_text(yaml.safe_dump(config))
    app = Aegis(load_settings(path))
    expected = f"{store_file(settings)}: the E2EE store is encrypted with another key"
    with pytest.raises(StoreKeyError, match=re.escape(expected)):
        await app.run()
    assert app.web is None  # stopped before anything else started
    store = open_store(settings, "y" * 40)  # untouched
    assert store.load_account() is not None
    store.database.close()


# --- file modes -------------------------------------------------------------------------


def test_the_database_and_store_files_are_created_private_whatever_the_umask(
    tmp_path: Path, umask_022: None, caplog: pytest.LogCaptureFixture
) -> None:
    settings = with_database(matrix(tmp_path), tmp_path / "data")
    with caplog.at_level(logging.WARNING):
        at_rest.prepare(settings, store_key(settings.matrix))
    assert mode(tmp_path / "store") == 0o700
    assert mode(store_file(settings.matrix)) == 0o600
    assert mode(tmp_path / "data" / "aegis.db") == 0o600
    assert mode(tmp_path / "store.key") == 0o600
    assert caplog.records == []


def test_looser_modes_are_named_in_a_warning_and_tightened(
    tmp_path: Path, umask_022: None, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "aegis.db"
    settings = with_database(matrix(tmp_path), tmp_path)
    store = settings.matrix.store_path
    store.mkdir(mode=0o755)
    loose = [
        store / "credentials.json",
        store_file(settings.matrix),
        database,
        tmp_path / "aegis.db-wal",
        tmp_path / "store.key",
    ]
    for path in loose:
        path.write_text("k" * 40 if path.name == "store.key" else "")
        path.chmod(0o644)
    os.symlink(database, store / "link")  # left alone: chmod would follow it
    with caplog.at_level(logging.WARNING):
        at_rest.prepare(settings, Key("k" * 40, str(tmp_path / "store.key"), generated=False))
    assert mode(store) == 0o700
    assert {path.name: mode(path) for path in loose} == {path.name: 0o600 for path in loose}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"{store} had mode 0755, looser than 0700: set to 0700" in warnings
    for path in loose:
        assert f"{path} had mode 0644, looser than 0600: set to 0600" in warnings
    assert len(warnings) == len(loose) + 1


def test_every_cli_command_runs_with_umask_077(
    tmp_path: Path, umask_022: None, capsys: pytest.CaptureFixture[str]
) -> None:
    example = Path(__file__).resolve().parents[1] / "config" / "example.yaml"
    assert main(["check-config", "-c", str(example)]) == 0
    assert os.umask(0o022) == 0o077
