"""Configuration as an operator meets it: the documented example, the CLI's error report,
environment overrides for secrets, and the version flag. No homeserver needed."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

import bot
from config import ConfigError, Role, Settings, load_settings
from workflow.access import DEFAULT_READ, Data

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "example.yaml"
EXIT_BAD_CONFIG = 2

VALID_ROOMS = {
    "coordination": "!abc:example.org",
    "approvals": "!def:example.org",
    "operations": "!ghi:example.org",
    "early_warning": "!jkl:example.org",
}


@pytest.fixture(autouse=True)
def _no_aegis_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's or CI's AEGIS_* variables must not leak into what a file means."""
    for name in list(os.environ):
        if name.startswith("AEGIS_"):
            monkeypatch.delenv(name)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
    return {**env, **extra}


def aegis(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process, as an operator or a container would run it."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        env=env if env is not None else _clean_env(),
        cwd=REPO,
        timeout=60,
    )


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def minimal_config(**matrix: Any) -> dict[str, Any]:
    return {
        "matrix": {"homeserver": "https://matrix.example.org", "user_id": "@aegis:example.org"}
        | matrix,
        "rooms": dict(VALID_ROOMS),
    }


# --- the documented example -------------------------------------------------------------


def key_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key a config file can contain, as spelled in YAML (aliases, e.g. logging.json)."""
    for name, field in model.model_fields.items():
        path = (*prefix, field.alias or name)
        yield path
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from key_paths(annotation, path)


def is_section(path: tuple[str, ...]) -> bool:
    node: Any = Settings
    for key in path:
        field = next(f for n, f in node.model_fields.items() if (f.alias or n) == key)
        node = field.annotation
    return isinstance(node, type) and issubclass(node, BaseModel)


def line_of(lines: list[str], path: tuple[str, ...]) -> int:
    """Index of the line defining path, searching each key inside its parent's block."""
    start, end = 0, len(lines)
    index = -1
    for depth, key in enumerate(path):
        indent = "  " * depth
        index = next(
            i for i in range(start, end) if lines[i].startswith(f"{indent}{key}:")
        )  # StopIteration (a test error) if the key is not there
        start = index + 1
        end = next(
            (
                i
                for i in range(start, end)
                if lines[i].strip()
                and not lines[i].lstrip().startswith("#")
                and len(lines[i]) - len(lines[i].lstrip()) <= len(indent)
            ),
            end,
        )
    return index


def test_example_config_is_valid() -> None:
    result = aegis("check-config", "-c", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout


def test_every_settings_key_appears_in_the_example() -> None:
    """A new key in Settings fails here until config/example.yaml documents it."""
    paths = list(key_paths(Settings))
    assert ("logging", "json") in paths and ("matrix", "access_token") in paths  # walker works
    example = yaml.safe_load(EXAMPLE.read_text())
    missing = []
    for path in paths:
        node = example
        for key in path:
            if not isinstance(node, dict) or key not in node:
                missing.append(".".join(path))
                break
            node = node[key]
    assert missing == []


def test_every_example_key_has_a_comment_above_it() -> None:
    lines = EXAMPLE.read_text().splitlines()
    undocumented = [
        ".".join(path)
        for path in key_paths(Settings)
        if not is_section(path) and not lines[line_of(lines, path) - 1].lstrip().startswith("#")
    ]
    assert undocumented == []


def test_example_shows_secrets_as_placeholders_with_their_env_vars() -> None:
    text = EXAMPLE.read_text()
    assert "AEGIS_MATRIX__PASSWORD" in text and "AEGIS_MATRIX__ACCESS_TOKEN" in text
    settings = load_settings(EXAMPLE)
    assert settings.matrix.password is not None
    assert "AEGIS_MATRIX__PASSWORD" in settings.matrix.password.get_secret_value()


# --- the error report -------------------------------------------------------------------

BAD_CONFIG: dict[str, Any] = {
    "matrix": {
        "homeserver": "https://matrix.example.org",
        "user_id": "aegis@example.org",
        "colour": "blue",
    },
    "bot": {"max_command_bytes": "lots", "timezone": "Mars/Olympus"},
    "rooms": VALID_ROOMS | {"approvals": "approvals-room"},
    "roles": {"@alice:example.org": ["liaison", "wizard"], "bob": ["analyst"]},
}

# (key as reported, fragments its reason must contain)
EXPECTED_PROBLEMS: list[tuple[str, list[str]]] = [
    ("matrix.colour", ["unknown key"]),
    ("matrix.user_id", ["'aegis@example.org'", "not a Matrix user ID"]),
    ("matrix.access_token", ["missing secret", "AEGIS_MATRIX__PASSWORD"]),
    ("bot.max_command_bytes", ["valid integer", "'lots'"]),
    ("bot.timezone", ["'Mars/Olympus'", "not an IANA timezone"]),
    ("rooms.approvals", ["'approvals-room'", "not a room ID"]),
    ("roles.@alice:example.org.1", ["'wizard'", "'liaison'"]),
    ("roles.bob", ["'bob'", "not a Matrix user ID"]),
]


def test_check_config_reports_every_problem_in_one_run(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "bad.yaml", BAD_CONFIG)
    result = aegis("check-config", "-c", str(path))
    assert result.returncode == EXIT_BAD_CONFIG
    lines = result.stderr.splitlines()
    assert str(path) in lines[0]
    assert f"({len(EXPECTED_PROBLEMS)} problems)" in lines[0], result.stderr
    for key, fragments in EXPECTED_PROBLEMS:
        matching = [line for line in lines if line.lstrip(" -").startswith(key)]
        assert len(matching) == 1, f"{key} not reported once in:\n{result.stderr}"
        for fragment in fragments:
            assert fragment in matching[0], f"{key}: {fragment!r} missing from {matching[0]!r}"


def test_missing_secret_alone_is_reported_and_the_environment_can_supply_it(
    tmp_path: Path,
) -> None:
    path = write_yaml(tmp_path / "no-secret.yaml", minimal_config())
    result = aegis("check-config", "-c", str(path))
    assert result.returncode == EXIT_BAD_CONFIG
    assert "(1 problem)" in result.stderr
    assert "missing secret" in result.stderr

    with_env = aegis(
        "check-config", "-c", str(path), env=_clean_env(AEGIS_MATRIX__ACCESS_TOKEN="syt_x")
    )
    assert with_env.returncode == 0, with_env.stderr


def test_a_value_of_the_wrong_form_is_described_never_shown_as_a_regular_expression(
    tmp_path: Path,
) -> None:
    config = minimal_config(homeserver="matrix.example.org", device_id="my device", password="x")
    config |= {
        "database": {"url": "mysql://db"},
        "http": {"listen": "everywhere", "public_url": "https://aegis.example.org/?x=1"},
        "logging": {"level": "LOUD"},
    }
    result = aegis("check-config", "-c", str(write_yaml(tmp_path / "forms.yaml", config)))
    assert result.returncode == EXIT_BAD_CONFIG
    expected = {
        "matrix.homeserver": "'matrix.example.org' must look like https://matrix.example.org",
        "matrix.device_id": "'my device' must look like AEGIS (1 to 64 letters",
        "database.url": "'mysql://db' must look like sqlite+aiosqlite:///",
        "http.listen": "'everywhere' must look like 127.0.0.1:8080",
        "http.public_url": "'https://aegis.example.org/?x=1' must look like https://aegis.",
        "logging.level": "'LOUD' must look like one of DEBUG, INFO, WARNING, ERROR",
    }
    assert f"({len(expected)} problems)" in result.stderr, result.stderr
    for key, reason in expected.items():
        assert f"{key}: {reason}" in result.stderr, result.stderr
    for regex_mark in ("^", "$", "\\", "[A-Z", "pattern"):
        assert regex_mark not in result.stderr, result.stderr


def test_an_invalid_password_is_not_also_reported_as_missing(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "bad-password.yaml", minimal_config(password=["not", "text"]))
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("matrix.password:")


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("missing.yaml", lambda p: None, "cannot read file: No such file or directory"),
        ("a-directory", lambda p: p.mkdir(), "cannot read file: Is a directory"),
        ("latin1.yaml", lambda p: p.write_bytes(b"\xff\xfe garbage"), "not UTF-8 text"),
        ("broken.yaml", lambda p: p.write_text("matrix: [unclosed\n"), "not valid YAML"),
        ("list.yaml", lambda p: p.write_text("- matrix\n"), "must be a mapping"),
    ],
)
def test_unusable_files_give_a_clear_message_and_exit_2(
    tmp_path: Path, name: str, make: Any, reason: str
) -> None:
    path = tmp_path / name
    make(path)
    result = aegis("check-config", "-c", str(path))
    assert result.returncode == EXIT_BAD_CONFIG
    assert str(path) in result.stderr
    assert reason in result.stderr
    assert "Traceback" not in result.stderr


# --- environment overrides and secrets --------------------------------------------------


def test_password_from_the_environment_when_the_file_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AEGIS_MATRIX__PASSWORD", "env-secret-42")
    settings = load_settings(write_yaml(tmp_path / "a.yaml", minimal_config()))
    assert settings.matrix.password is not None
    assert settings.matrix.password.get_secret_value() == "env-secret-42"
    assert settings.matrix.user_id == "@aegis:example.org"  # the rest still comes from the file


def test_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_MATRIX__PASSWORD", "from-env")
    monkeypatch.setenv("AEGIS_BOT__TIMEZONE", "UTC")
    data = minimal_config(password="from-file") | {"bot": {"timezone": "Europe/Paris"}}
    settings = load_settings(write_yaml(tmp_path / "a.yaml", data))
    assert settings.matrix.password is not None
    assert settings.matrix.password.get_secret_value() == "from-env"
    assert settings.bot.timezone == "UTC"


def test_secrets_never_appear_in_repr_or_str(tmp_path: Path) -> None:
    settings = load_settings(
        write_yaml(
            tmp_path / "a.yaml",
            minimal_config(password="hunter2-password", access_token="syt_token_value"),
        )
    )
    for text in (repr(settings), str(settings), repr(settings.matrix), str(settings.matrix)):
        assert "hunter2-password" not in text
        assert "syt_token_value" not in text
    assert settings.matrix.password is not None
    assert settings.matrix.password.get_secret_value() == "hunter2-password"


# --- individual values ------------------------------------------------------------------


def with_approvals_room(room: str) -> dict[str, Any]:
    return minimal_config(password="x") | {"rooms": VALID_ROOMS | {"approvals": room}}


@pytest.mark.parametrize(
    "room",
    [
        "!abc",  # room version 12: no server part
        "!Vq2Bx_abc-DEF123",
        "!abc:example.org",
        "!abc:example.org:8448",
        "#aegis:example.org",
    ],
)
def test_valid_room_references_are_accepted(room: str) -> None:
    settings = Settings(**with_approvals_room(room))
    assert settings.rooms.approvals == room


@pytest.mark.parametrize("room", ["abc", "#alias-without-server", "!has space", "!", ""])
def test_invalid_room_references_are_rejected(room: str) -> None:
    with pytest.raises(ValidationError, match="not a room ID"):
        Settings(**with_approvals_room(room))


# --- version ----------------------------------------------------------------------------


def test_python_m_bot_version() -> None:
    result = aegis("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"aegis {version('aegis')}"


def test_aegis_console_script_version() -> None:
    script = Path(sysconfig.get_path("scripts")) / "aegis"
    assert script.exists(), f"console script not installed at {script}"
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, env=_clean_env(), timeout=60
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"aegis {bot.__version__}"


def test_a_mistyped_secret_is_never_echoed(tmp_path: Path) -> None:
    path = tmp_path / "aegis.yaml"
    path.write_text(
        "matrix: {homeserver: 'https://m.example.org', user_id: '@a:example.org', "
        "password: 98765432123}\n"
        "rooms: {coordination: '!a:x', approvals: '!b:x', operations: '!c:x', "
        "early_warning: '!d:x'}\n"
        "http: {token: 12345678901234567890}\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    report = raised.value.report()
    assert "matrix.password" in report and "http.token" in report
    assert "98765432123" not in report and "12345678901234567890" not in report
    assert "value hidden" in report


def test_access_read_defaults_match_the_workflow_and_a_key_left_out_keeps_its_default(
    tmp_path: Path,
) -> None:
    settings = load_settings(write_yaml(tmp_path / "a.yaml", minimal_config(password="x")))
    as_policy = {Data(k): frozenset(v) for k, v in settings.access.read.items()}
    assert as_policy == DEFAULT_READ
    narrowed = load_settings(
        write_yaml(
            tmp_path / "b.yaml",
            {**minimal_config(password="x"), "access": {"read": {"dossier": ["admin"]}}},
        )
    )
    assert narrowed.access.read["dossier"] == [Role.ADMIN]
    assert narrowed.access.read["execution"] == settings.access.read["execution"]


def test_access_read_names_an_unknown_kind_of_data(tmp_path: Path) -> None:
    config = {**minimal_config(password="x"), "access": {"read": {"dosier": ["admin"]}}}
    with pytest.raises(ConfigError) as caught:
        load_settings(write_yaml(tmp_path / "a.yaml", config))
    assert any(p.startswith("access.read") and "'dosier'" in p for p in caught.value.problems)


# --- an overrides file over the main one --------------------------------------------------


def test_an_overrides_file_merges_section_by_section_and_replaces_lists(tmp_path: Path) -> None:
    base = minimal_config(password="from-base")
    base["bot"] = {"prefix": "!", "timezone": "Europe/Brussels"}
    base["allowed_servers"] = ["example.org", "partner.example"]
    base["meetings"] = {"weekly": {"rrule": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=10"}}
    overrides = {
        "bot": {"prefix": "?"},
        "allowed_servers": ["example.org"],
        "meetings": {"daily": {"rrule": "FREQ=DAILY;BYHOUR=8", "agenda": "daily"}},
    }
    settings = load_settings(
        write_yaml(tmp_path / "base.yaml", base), write_yaml(tmp_path / "over.yaml", overrides)
    )
    assert (settings.bot.prefix, settings.bot.timezone) == ("?", "Europe/Brussels")
    assert settings.allowed_servers == ["example.org"]
    assert sorted(settings.meetings) == ["daily", "weekly"]
    assert settings.matrix.password is not None
    assert settings.matrix.password.get_secret_value() == "from-base"
    empty = write_yaml(tmp_path / "empty.yaml", None)
    assert load_settings(tmp_path / "base.yaml", empty) == load_settings(tmp_path / "base.yaml")


def test_a_bad_key_in_the_overrides_is_reported_with_the_file_it_came_from(
    tmp_path: Path,
) -> None:
    base = write_yaml(tmp_path / "base.yaml", minimal_config(password="x"))
    over = write_yaml(tmp_path / "over.yaml", {"bot": {"timezone": "Mars/Olympus", "colour": 1}})
    result = aegis("check-config", "-c", str(base), "-c", str(over))
    assert result.returncode == EXIT_BAD_CONFIG
    problems = result.stderr.splitlines()[1:]
    assert len(problems) == 2, result.stderr
    assert any("bot.timezone" in p and f"(set in {over})" in p for p in problems), problems
    assert any("bot.colour: unknown key" in p and f"(set in {over})" in p for p in problems)

    fixed = write_yaml(tmp_path / "over.yaml", {"bot": {"prefix": "?"}})
    result = aegis("check-config", "-c", str(base), "-c", str(fixed))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{base} + {fixed}: configuration is valid"
    broken = tmp_path / "broken.yaml"
    broken.write_text("bot: [", encoding="utf-8")
    result = aegis("check-config", "-c", str(base), "-c", str(broken))
    assert result.returncode == EXIT_BAD_CONFIG
    assert str(broken) in result.stderr.splitlines()[0]


# --- database.migrate_url ---------------------------------------------------------------

PG_APP = "postgresql+asyncpg://aegis_app:pw@db.example.org/aegis"
PG_OWNER = "postgresql+asyncpg://aegis_owner:pw@db.example.org/aegis"


def test_migrate_url_is_optional_and_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_yaml(
        tmp_path / "a.yaml", minimal_config(password="pw") | {"database": {"url": PG_APP}}
    )
    assert load_settings(path).database.migrate_url is None  # an older config: as before
    monkeypatch.setenv("AEGIS_DATABASE__MIGRATE_URL", PG_OWNER)
    assert load_settings(path).database.migrate_url == PG_OWNER


@pytest.mark.parametrize(
    ("url", "migrate_url", "reason"),
    [
        ("sqlite+aiosqlite:///data/aegis.db", PG_OWNER, "SQLite has no roles"),
        (PG_APP, "sqlite+aiosqlite:///data/aegis.db", "PostgreSQL only"),
        (
            PG_APP,
            "postgresql+asyncpg://aegis_owner:pw@db.example.org/other",
            "must name the database of database.url",
        ),
    ],
)
def test_a_migrate_url_that_cannot_migrate_the_bots_database_is_refused(
    tmp_path: Path, url: str, migrate_url: str, reason: str
) -> None:
    data = minimal_config(password="pw") | {"database": {"url": url, "migrate_url": migrate_url}}
    with pytest.raises(ConfigError) as caught:
        load_settings(write_yaml(tmp_path / "a.yaml", data))
    [problem] = caught.value.problems
    assert problem.startswith("database.migrate_url:") and reason in problem, problem
