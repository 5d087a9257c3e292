"""Reading the YAML file and turning validation failures into messages an operator can act on."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from config.settings import Settings


class ConfigError(Exception):
    """Every problem in a config file at once, so one edit fixes them all."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))

    def report(self) -> str:
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"{self.path}: invalid configuration ({count} {noun})"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


SECRET_KEYS = frozenset({"password", "access_token", "token", "session_key", "store_key", "key"})


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{key}: unknown key"
    if kind == "missing":
        return f"{key}: required key is missing"
    if kind == "string_pattern_mismatch":
        # pydantic's message is the regular expression itself; settings.py words its own.
        return f"{key}: does not have the expected form"
    message = str(error["msg"]).removeprefix("Value error, ")
    secret = any(str(part) in SECRET_KEYS for part in error["loc"])
    if kind in ("enum", "literal_error", "string_type", "int_parsing", "bool_parsing"):
        # A secret mistyped (a number, a list) must not be echoed to a terminal or a log.
        message += " (value hidden: it is a secret)" if secret else f" (got {error['input']!r})"
    return f"{key}: {message}"


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """`-c FILE`, repeatable: a local overrides file merges over the main one, so the main
    file can be regenerated or upgraded without losing a person's own changes."""
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        action="append",
        required=True,
        metavar="FILE",
        help="config file; repeat it to merge later files over earlier ones",
    )


def load_settings(path: Path, *overrides: Path) -> Settings:
    """The settings of `path`, with each of `overrides` merged over it in order: sections
    merge key by key, any other value (a list too) replaces the earlier one."""
    layers = [(path, _read(path)), *((extra, _read(extra)) for extra in overrides)]
    raw: dict[str, Any] = {}
    for _, data in layers:
        raw = _merged(raw, data)
    try:
        return Settings(**raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            problem = _describe(dict(error))
            source = _source(layers, error["loc"])
            problems.append(problem if source == path else f"{problem} (set in {source})")
        raise ConfigError(path, problems) from None


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(path, [f"cannot read file: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [f"not UTF-8 text: byte {exc.start} cannot be decoded"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, [f"not valid YAML: {exc}"]) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(path, ["(top level): must be a mapping of sections"])
    return raw


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _source(layers: list[tuple[Path, dict[str, Any]]], loc: tuple[int | str, ...]) -> Path:
    """The file a bad key comes from: the last one that sets the most of its path."""
    best, depth = layers[0][0], 0
    for path, data in layers:
        found, node = 0, data
        for part in loc:
            if not isinstance(node, dict) or part not in node:
                break
            found, node = found + 1, node[part]
        if found and found >= depth:
            best, depth = path, found
    return best
