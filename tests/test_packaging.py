"""The container image and the package agree: no Docker engine is needed to check that the
image's entrypoint exists and that its build context carries every shipped package."""

from __future__ import annotations

import importlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

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
    assert str(args.config).startswith("/data/")
    assert "/data" in last("VOLUME")


def test_two_stages_on_python_311_slim_and_a_non_root_user() -> None:
    stages = [rest for kw, rest in dockerfile_instructions() if kw == "FROM"]
    assert len(stages) == 2
    assert all(stage.split()[0] == "python:3.11-slim" for stage in stages)
    assert last("USER") == "aegis"
    runtime = dockerfile_instructions()
    runtime = runtime[max(i for i, (kw, _) in enumerate(runtime) if kw == "FROM") :]
    runs = " ".join(rest for kw, rest in runtime if kw == "RUN")
    assert "--no-index" in runs and "aegis" in runs  # installs the built wheel, not the source
    assert not any(kw in ("COPY", "ADD") for kw, _ in runtime)  # no source tree in the image


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
