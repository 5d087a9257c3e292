"""The container image and the package agree: no Docker engine is needed to check that the
image's entrypoint exists and that its build context carries every shipped package."""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuations joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def last(keyword: str) -> str:
    values = [rest for kw, rest in dockerfile_instructions() if kw == keyword]
    assert values, f"Dockerfile has no {keyword}"
    return values[-1]


def test_entrypoint_is_a_console_script_resolving_to_a_callable() -> None:
    entrypoint = json.loads(last("ENTRYPOINT"))
    assert isinstance(entrypoint, list), "exec form, so SIGTERM reaches the bot directly"
    scripts = pyproject()["project"]["scripts"]
    assert entrypoint[0] in scripts
    module_name, _, attribute = scripts[entrypoint[0]].partition(":")
    target = getattr(importlib.import_module(module_name), attribute)
    assert callable(target)
    assert scripts[entrypoint[0]] == "bot.cli:main"


def test_default_command_is_a_valid_cli_invocation_reading_the_volume() -> None:
    from bot.cli import _parser

    command = json.loads(last("CMD"))
    args = _parser().parse_args(command)
    assert args.command == "run"
    assert [str(path) for path in args.config] == ["/data/aegis.yaml"]
    assert "/data" in last("VOLUME")


PYTHON_IMAGE = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")


def test_two_stages_on_one_exact_python_311_slim_and_a_non_root_user() -> None:
    stages = [rest for kw, rest in dockerfile_instructions() if kw == "FROM"]
    assert len(stages) == 2
    images = {stage.split()[0] for stage in stages}
    assert len(images) == 1 and PYTHON_IMAGE.match(images.pop()), stages
    assert last("USER") == "aegis"
    runs = " ".join(rest for kw, rest in runtime_stage() if kw == "RUN")
    assert "--no-index" in runs and "aegis" in runs  # installs the built wheel, not the source
    assert not any(kw in ("COPY", "ADD") for kw, _ in runtime_stage())  # no source tree


def runtime_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    return instructions[max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM") :]


def lock_pins(name: str = "requirements.lock") -> dict[str, tuple[str, list[str]]]:
    """A lock file as {normalised name: (version, hashes)}."""
    text = re.sub(r"\\\n", " ", (REPO / name).read_text())
    pins = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            requirement, *options = line.split()
            name, _, version = requirement.partition("==")
            hashes = [o.removeprefix("--hash=") for o in options if o.startswith("--hash=")]
            pins[canonicalize_name(name)] = (version, hashes)
    return pins


def test_the_image_installs_the_lock_with_hashes_and_nothing_else() -> None:
    """Every dependency comes from requirements.lock, checked against its hashes; Aegis
    itself is installed without resolving anything (--no-deps), so nothing unpinned or
    unchecked can slip in, and the build stage builds only Aegis's own wheel."""
    runs = [rest for kw, rest in runtime_stage() if kw == "RUN"]
    [install] = [run for run in runs if "requirements.lock" in run]
    assert "source=requirements.lock,target=/tmp/requirements.lock" in install
    dependencies, aegis = install.split("&&")
    assert "--require-hashes" in dependencies.split() and "--no-deps" in dependencies.split()
    assert "-r /tmp/requirements.lock" in dependencies
    assert "--no-deps" in aegis.split() and "--no-index" in aegis.split()
    # The build stage builds Aegis alone, with the hashed build backend of its own lock.
    build = next(rest for kw, rest in dockerfile_instructions() if kw == "RUN")
    backend, wheel = build.split("&&")
    assert {"--require-hashes", "--no-deps", "requirements-build.lock"} <= set(backend.split())
    assert "pip wheel" in wheel and {"--no-deps", "--no-build-isolation"} <= set(wheel.split())
    build_pins = lock_pins("requirements-build.lock")
    for requirement in map(Requirement, pyproject()["build-system"]["requires"]):
        version, hashes = build_pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version) and hashes, requirement
    allowed = (REPO / ".dockerignore").read_text().splitlines()
    assert {"!requirements.lock", "!requirements-build.lock"} <= set(allowed)


def test_the_lock_pins_with_hashes_every_runtime_dependency_and_theirs() -> None:
    """Everything `pip install .` would bring on Linux with Python 3.11, extras included
    (found through the installed packages' own metadata), is pinned in requirements.lock to a
    version pyproject.toml accepts, with sha256 hashes; and nothing else is."""
    pins = lock_pins()
    assert all(version and hashes for version, hashes in pins.values()), "unpinned or unhashed"
    assert all(h.startswith("sha256:") for _, hashes in pins.values() for h in hashes)
    needed: set[str] = set()
    expanded: set[tuple[str, str]] = set()
    todo = [(Requirement(r), "") for r in pyproject()["project"]["dependencies"]]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in requirements.lock"
        assert requirement.specifier.contains(pins[name][0], prereleases=True), requirement
        needed.add(name)
        for wanted in ("", *requirement.extras):
            if (name, wanted) not in expanded:
                expanded.add((name, wanted))
                todo += [(Requirement(r), wanted) for r in metadata.requires(name) or []]
    assert set(pins) == needed, "requirements.lock holds packages nothing needs"


def test_dockerignore_lets_through_every_packaged_directory() -> None:
    """A new top-level package added to pyproject but not to .dockerignore would silently be
    missing from the image's wheel."""
    lines = (REPO / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert "*" in lines  # allow-list mode: everything else stays out
    setuptools = pyproject()["tool"]["setuptools"]
    packages = {pattern.rstrip("*") for pattern in setuptools["packages"]["find"]["include"]}
    assert packages and packages <= allowed
    assert {"pyproject.toml", pyproject()["project"]["readme"]} <= allowed
    assert {".dev", ".git", "data", "tests"}.isdisjoint(allowed)


# --- the stack: HEALTHCHECK and docker-compose.yml --------------------------------------------


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def healthcheck_code(test: list[str]) -> str:
    """The Python a healthcheck runs: `CMD python -c CODE`, as the slim image has no curl."""
    assert test[0] == "CMD" and test[1:3] == ["python", "-c"], test
    return test[3]


def image_healthcheck() -> tuple[str, str]:
    """(options, code) of the Dockerfile's HEALTHCHECK, whose command is in exec form."""
    options, _, command = last("HEALTHCHECK").partition(" CMD ")
    return options, healthcheck_code(["CMD", *json.loads(command)])


def test_image_exposes_8080_and_checks_healthz_on_it() -> None:
    assert last("EXPOSE").split() == ["8080"]
    options, code = image_healthcheck()
    assert "--interval=" in options and "--timeout=" in options
    assert "http://127.0.0.1:8080/healthz" in code
    compile(code, "HEALTHCHECK", "exec")


async def test_the_healthcheck_passes_against_a_live_bot_server_and_fails_without(
    tmp_path: Path,
) -> None:
    """The image's check, run as is (but on a free port) against the real health part."""
    from bot.health import Health, SyncStatus
    from bot.metrics import Metrics
    from bot.web import WebServer
    from storage.db import Database
    from workflow.clock import SystemClock

    code = image_healthcheck()[1]
    status = SyncStatus()
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'aegis.db'}")
    server = WebServer([Health(db, status, Metrics(status.lag, SystemClock()))])
    port = await server.start("127.0.0.1:0")

    async def check() -> int:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code.replace(":8080/", f":{port}/"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return await process.wait()

    try:
        assert await check() == 0
    finally:
        await server.stop()
        await db.close()
    assert await check() != 0


def test_compose_runs_synapse_postgres_and_aegis_the_way_the_image_expects() -> None:
    services = compose()["services"]
    assert set(services) == {"synapse", "postgres", "aegis-migrate", "aegis"}
    assert services["synapse"]["image"].startswith("matrixdotorg/synapse:")

    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:16.")
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])

    aegis = services["aegis"]
    assert aegis["build"] == "."
    assert aegis["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert any(v.split(":")[1] == "/data" for v in aegis["volumes"])
    named = {v.split(":")[0] for v in aegis["volumes"] if not v.startswith(".")}
    assert named <= set(compose()["volumes"])
    # The compose healthcheck is the image's, on the port the image exposes.
    code = healthcheck_code(aegis["healthcheck"]["test"])
    assert "http://127.0.0.1:8080/healthz" in code
    assert code == image_healthcheck()[1]
    assert any(p.endswith(":8080") for p in aegis["ports"])
    # Its command is a valid invocation of the image's entry point.
    from bot.cli import _parser

    args = _parser().parse_args(aegis["command"])
    assert args.command == "run"
    mounted = {v.split(":")[1] for v in aegis["volumes"]}
    assert args.config and {str(path) for path in args.config} <= mounted


def test_compose_environment_names_real_settings_and_reaches_postgres(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every AEGIS_* variable the stack sets is a setting the bot reads; with them, the
    example config runs on the stack's PostgreSQL and listens where the healthcheck asks."""
    from config import load_settings

    environment = compose()["services"]["aegis"]["environment"]
    assert all(name.startswith("AEGIS_") for name in environment)
    # Compose's ${NAME:?error} and ${NAME:-default}, filled in as compose would from .env.
    for name, raw in environment.items():
        monkeypatch.setenv(name, re.sub(r"\$\{(\w+)(:[?-][^}]*)?\}", r"secret-\1", str(raw)))
    settings = load_settings(REPO / "config" / "example.yaml")
    assert settings.database.url.startswith("postgresql+asyncpg://aegis_app:secret-")
    assert settings.database.migrate_url is None  # the bot never holds the owner's password
    assert settings.database.url.endswith("@postgres:5432/aegis")
    assert settings.http.listen == "0.0.0.0:8080"
    assert str(settings.matrix.store_path).startswith("/data/")
    assert settings.matrix.homeserver.rstrip("/") == "http://synapse:8008"
    assert settings.matrix.password is not None


# --- exact base images, and the database roles of the stack --------------------------------


def test_base_images_carry_exact_tags_and_synapse_is_the_tested_version() -> None:
    """A moving tag (python:3.11-slim, postgres:16, latest) would change what runs without
    a change here; a digest (@sha256:...) may follow the tag (docs/operations.md)."""
    makefile = (REPO / "Makefile").read_text()
    synapse_version = re.search(r"^SYNAPSE_VERSION := (\S+)$", makefile, re.M)
    assert synapse_version
    digest = r"(@sha256:[0-9a-f]{64})?$"
    exact = {
        "postgres": re.compile(r"^postgres:16\.\d+-bookworm" + digest),
        "synapse": re.compile(rf"^matrixdotorg/synapse:v{re.escape(synapse_version[1])}" + digest),
    }
    services = compose()["services"]
    for name, pattern in exact.items():
        assert pattern.match(services[name]["image"]), services[name]["image"]
    # The rest are built here, from the Dockerfile's exact python image.
    assert all("build" in s for n, s in services.items() if n not in exact)


def test_compose_gives_aegis_and_synapse_their_own_non_superuser_roles() -> None:
    """The bot runs as aegis_app, which owns nothing; aegis-migrate, as aegis_owner, upgrades
    the schema before it; Synapse has its own role; none of them is PostgreSQL's superuser,
    and the init script that makes them is the one PostgreSQL runs on its first start."""
    from sqlalchemy.engine import make_url

    services = compose()["services"]
    init = "./deploy/postgres-init.sql"
    assert any(
        v.startswith(f"{init}:/docker-entrypoint-initdb.d/")
        for v in services["postgres"]["volumes"]
    )
    assert "POSTGRES_USER" not in services["postgres"]["environment"]  # the superuser: postgres
    script = (REPO / init).read_text()
    created = dict(re.findall(r"^CREATE ROLE (\w+) (.*);$", script, re.M))
    assert set(created) == {"aegis_owner", "aegis_app", "synapse"}
    assert all("NOSUPERUSER" in a and "NOCREATEROLE" in a for a in created.values())
    assert "CREATE DATABASE aegis OWNER aegis_owner" in script
    assert "CREATE DATABASE synapse OWNER synapse" in script

    def user(url: str) -> str | None:
        return make_url(re.sub(r"\$\{[^}]*\}", "pw", url)).username

    bot, migrate = services["aegis"], services["aegis-migrate"]
    assert user(bot["environment"]["AEGIS_DATABASE__URL"]) == "aegis_app"
    assert "AEGIS_DATABASE__MIGRATE_URL" not in bot["environment"]
    assert user(migrate["environment"]["AEGIS_DATABASE__URL"]) == "aegis_app"
    assert user(migrate["environment"]["AEGIS_DATABASE__MIGRATE_URL"]) == "aegis_owner"
    assert bot["depends_on"]["aegis-migrate"]["condition"] == "service_completed_successfully"
    from bot.cli import _parser

    assert _parser().parse_args(migrate["command"]).command == "migrate"
