"""Secret keys that may live in a file the bot generates: the E2EE store's key.

A key given in the configuration (or its environment variable) wins. Without one, a random
key is generated on the first start into a file beside the store, mode 0600, and read back
at every later start: the bot never falls back to a fixed key that any reader of its source
knows (nio's own default store key is such a key)."""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from config.loader import ConfigError
from config.settings import MatrixSettings

MIN_KEY_CHARS = 32
STORE_KEY = "matrix.store_key"


@dataclass(frozen=True)
class Key:
    """A key and where it came from, for the start's log lines (never the key itself)."""

    value: str = field(repr=False)
    source: str  # the config key, or the path of the key file
    generated: bool  # created by this start: the operator must learn of it, and back it up


def store_key_file(matrix: MatrixSettings) -> Path:
    """Beside the store, not in it: data/store -> data/store.key."""
    return matrix.store_path.with_name(matrix.store_path.name + ".key")


def store_key(matrix: MatrixSettings) -> Key:
    if matrix.store_key is not None:
        return Key(matrix.store_key.get_secret_value(), STORE_KEY, generated=False)
    return read_or_generate(store_key_file(matrix), STORE_KEY)


def generated_store_key(matrix: MatrixSettings) -> str | None:
    """The key in the generated file, if there is one: a store whose operator has since set
    `matrix.store_key` is still under it until the bot re-encrypts it."""
    try:
        return _read(store_key_file(matrix), STORE_KEY)
    except FileNotFoundError:
        return None


def read_or_generate(path: Path, config_key: str) -> Key:
    """The key in `path`, created on first use. Two processes starting together (active and
    standby) get the same key: the file appears complete or not at all (link, not rename,
    so the loser of the race reads the winner's key instead of replacing it)."""
    try:
        return Key(_read(path, config_key), str(path), generated=False)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(draft, path)
    except FileExistsError:
        return Key(_read(path, config_key), str(path), generated=False)
    finally:
        with contextlib.suppress(FileNotFoundError):
            draft.unlink()
    return Key(value, str(path), generated=True)


def _read(path: Path, config_key: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(path, [f"{config_key}: cannot read the key file: {reason}"]) from None
    if len(value) < MIN_KEY_CHARS:
        raise ConfigError(
            path,
            [
                f"{config_key}: the key file holds {len(value)} characters, "
                f"a key needs at least {MIN_KEY_CHARS}"
            ],
        )
    return value
