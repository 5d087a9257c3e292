"""Fast rules of the keyed audit trail: when a checkpoint is due, what a checkpoint message
carries, and where the audit key comes from (config, key file, or one generated at first
start), with the error an operator gets for a bad one."""

from __future__ import annotations

import logging
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.anchor import CONTENT_KEY, content, parse
from config import ConfigError, audit_key, load_settings
from config.audit_key import generated_path
from storage.audit import Checkpoint
from workflow.anchoring import Anchored, AnchorPolicy, checkpoint_due, next_checkpoint

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
POLICY = AnchorPolicy(every=10, period=timedelta(minutes=30))
HASH = "ab" * 32


@pytest.mark.parametrize(
    ("head", "last", "minutes", "closing", "due"),
    [
        (0, 0, 999, False, False),  # an empty trail: nothing to anchor
        (5, 5, 999, True, False),  # nothing new since the last, not even at shutdown
        (9, 0, 29, False, False),  # fewer than N, within M minutes
        (10, 0, 0, False, True),  # N entries since the last
        (14, 4, 1, False, True),
        (13, 4, 29, False, False),
        (5, 4, 30, False, True),  # M minutes passed and something was added
        (5, 4, 0, True, True),  # shutdown anchors any new entry
    ],
)
def test_a_checkpoint_is_due_every_n_entries_or_m_minutes_and_at_shutdown(
    head: int, last: int, minutes: int, closing: bool, due: bool
) -> None:
    now = T0 + timedelta(minutes=minutes)
    assert checkpoint_due(POLICY, head, Anchored(last, T0), now, closing=closing) is due


def test_the_next_checkpoint_falls_due_m_minutes_after_the_last_if_anything_was_added() -> None:
    assert next_checkpoint(POLICY, 7, Anchored(3, T0)) == T0 + timedelta(minutes=30)
    assert next_checkpoint(POLICY, 3, Anchored(3, T0)) is None


def test_a_checkpoint_message_is_one_line_with_fields_verify_reads_back() -> None:
    posted = content(Checkpoint(42, HASH))
    assert posted["msgtype"] == "m.notice" and "\n" not in posted["body"]
    assert posted["body"] == f"Audit checkpoint: entry 42, hash {HASH}"
    assert parse(posted) == Checkpoint(42, HASH)
    for forged in (
        {"body": "Audit checkpoint: entry 42"},
        {CONTENT_KEY: {"seq": "42", "hash": HASH}},
        {CONTENT_KEY: {"seq": 42, "hash": "short"}},
        {CONTENT_KEY: [42, HASH]},
    ):
        assert parse(forged) is None


# ------------------------------------------------------------------------- the key


def _config(tmp_path: Path, audit: dict[str, Any] | None = None) -> Path:
    """A config as the previous version wrote them: no audit section unless given."""
    data: dict[str, Any] = {
        "matrix": {
            "homeserver": "https://matrix.example.org",
            "user_id": "@aegis:example.org",
            "password": "not-used",
            "store_path": str(tmp_path / "data" / "store"),
        },
        "rooms": {
            "coordination": "!a:example.org",
            "approvals": "!b:example.org",
            "operations": "!c:example.org",
            "early_warning": "!d:example.org",
        },
    }
    if audit is not None:
        data["audit"] = audit
    path = tmp_path / "aegis.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(autouse=True)
def _no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AEGIS_AUDIT__KEY", raising=False)
    monkeypatch.delenv("AEGIS_AUDIT__KEY_FILE", raising=False)


def test_an_old_config_gets_a_generated_0600_key_file_beside_the_store_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(_config(tmp_path))
    assert settings.rooms.audit is None
    with pytest.raises(ConfigError) as refused:  # tools on the host never invent a key
        audit_key(settings)
    assert "audit.key" in refused.value.report()
    with caplog.at_level(logging.WARNING):
        key = audit_key(settings, create=True)
    path = generated_path(settings)
    assert path == tmp_path / "data" / "audit.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 32 and path.read_text().strip().encode() == key
    assert any("generated" in r.message and str(path) in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert audit_key(settings, create=True) == key  # the next start reads it back
        assert audit_key(settings) == key
    assert not caplog.records


def test_the_key_comes_from_the_config_the_environment_or_a_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "k" * 40
    assert audit_key(load_settings(_config(tmp_path, {"key": key}))) == key.encode()
    key_file = tmp_path / "audit-key.txt"
    key_file.write_text("f" * 32 + "\n")
    settings = load_settings(_config(tmp_path, {"key_file": str(key_file)}))
    assert audit_key(settings) == b"f" * 32
    monkeypatch.setenv("AEGIS_AUDIT__KEY", "e" * 33)
    assert audit_key(load_settings(_config(tmp_path))) == b"e" * 33
    assert not generated_path(load_settings(_config(tmp_path))).exists()


def test_a_bad_key_stops_the_start_naming_the_file_the_key_and_the_reason(
    tmp_path: Path,
) -> None:
    path = _config(tmp_path, {"key": "too short"})
    with pytest.raises(ConfigError) as short:
        load_settings(path)
    report = short.value.report()
    assert str(path) in report and "audit.key" in report and "at least 32" in report
    assert "too short" not in report  # a secret is never echoed

    both = _config(tmp_path, {"key": "k" * 40, "key_file": "/etc/aegis/key"})
    with pytest.raises(ConfigError) as twice:
        load_settings(both)
    assert "audit.key_file" in twice.value.report() and "not both" in twice.value.report()

    key_file = tmp_path / "short.key"
    key_file.write_text("abc")
    settings = load_settings(_config(tmp_path, {"key_file": str(key_file)}))
    with pytest.raises(ConfigError) as weak:
        audit_key(settings)
    assert str(key_file) in weak.value.report() and "audit.key_file" in weak.value.report()
    assert "at least 32" in weak.value.report()

    missing = load_settings(_config(tmp_path, {"key_file": str(tmp_path / "nowhere")}))
    with pytest.raises(ConfigError) as unreadable:
        audit_key(missing)
    assert "nowhere" in unreadable.value.report() and "cannot read" in unreadable.value.report()


def test_the_cli_refuses_an_unusable_key_file_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import EXIT_BAD_CONFIG, main

    key_file = tmp_path / "audit.secret"
    key_file.write_text("not long enough")
    config = str(_config(tmp_path, {"key_file": str(key_file)}))
    assert main(["check-config", "-c", config]) == EXIT_BAD_CONFIG
    assert main(["audit", "verify", "-c", config, "--offline"]) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert err.count(f"{key_file}: invalid configuration") == 2
    assert "audit.key_file: the audit key must have at least 32 characters" in err


def test_checkpoints_go_to_the_audit_room_which_is_joined_but_never_commanded() -> None:
    from bot.pipeline import Rooms
    from commands.replies import RoomKey

    configured = {key: f"!{key.value}:x" for key in RoomKey}
    without = Rooms(configured)
    assert without.checkpoints == "!coordination:x" and not without.joins("!audit:x")
    with_room = Rooms(configured, "!audit:x")
    assert with_room.checkpoints == "!audit:x"
    assert with_room.joins("!audit:x") and not with_room.known("!audit:x")
