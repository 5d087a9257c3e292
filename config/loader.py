"""Reading the YAML file and turning validation failures into messages an operator can act on."""

from __future__ import annotations

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


SECRET_KEYS = frozenset({"password", "access_token", "token", "session_key"})


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


def load_settings(path: Path) -> Settings:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(path, [f"cannot read file: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, [f"not UTF-8 text: byte {exc.start} cannot be decoded"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, [f"not valid YAML: {exc}"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(path, ["(top level): must be a mapping of sections"])
    try:
        return Settings(**raw)
    except ValidationError as exc:
        raise ConfigError(path, [_describe(dict(e)) for e in exc.errors()]) from None
