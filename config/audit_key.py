"""The audit chain's key: from `audit.key`, from the file `audit.key_file` names, or from a
file the bot generates beside its store on first start.

The key signs every audit entry, so it must never live in the database: whoever can write
the database could then recompute the chain after rewriting it. This is the one place that
reads (and, on first start, writes) it."""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from pathlib import Path

from config.loader import ConfigError
from config.settings import AUDIT_KEY_MIN, Settings

log = logging.getLogger(__name__)

GENERATED_NAME = "audit.key"


def generated_path(settings: Settings) -> Path:
    """Beside the E2EE store, so a backup of the bot's data directory holds both."""
    return settings.matrix.store_path.parent / GENERATED_NAME


def audit_key(settings: Settings, *, create: bool = False) -> bytes:
    """The key as bytes. `create` (the bot's start, and the host's tools that write audit
    entries: `aegis partner`, `role`, `purge`, which may run before the first start)
    generates the file when no key is configured and none was generated yet; a chain already
    signed under another key refuses the fresh one at the first entry (AuditKeyMismatch).
    `aegis audit verify` never creates one. A bad key raises ConfigError naming the file,
    the key and the reason."""
    audit = settings.audit
    if audit.key is not None:
        return audit.key.get_secret_value().strip().encode()
    if audit.key_file is not None:
        return _read(audit.key_file, "audit.key_file")
    path = generated_path(settings)
    if path.exists():
        return _read(path, "audit.key (generated)")
    if not create:
        raise ConfigError(
            path,
            [
                "audit.key: no audit key: set audit.key or audit.key_file "
                "(or start the bot once, which generates this file)"
            ],
        )
    return _generate(path)


def _read(path: Path, key: str) -> bytes:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(path, [f"{key}: cannot read the audit key: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError(path, [f"{key}: the audit key file is not UTF-8 text"]) from None
    if len(text) < AUDIT_KEY_MIN:
        raise ConfigError(
            path,
            [f"{key}: the audit key must have at least {AUDIT_KEY_MIN} characters"],
        )
    return text.encode()


def _generate(path: Path) -> bytes:
    """Written to a 0600 temporary file, then linked into place: a crash never leaves a
    half-written key, two instances starting at once cannot each keep a key of their own
    (the link fails for the second, which reads the first's), and no other local user can
    read it."""
    key = secrets.token_urlsafe(48)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".audit-key-", dir=path.parent)  # mode 0600
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        finally:
            os.unlink(tmp)
    except FileExistsError:
        return _read(path, "audit.key (generated)")
    except OSError as exc:
        problem = f"audit.key: cannot create the key file: {exc.strerror}"
        raise ConfigError(path, [problem]) from None
    log.warning(
        "no audit.key configured: generated %s (mode 0600). Back it up apart from the "
        "database: without it the audit trail cannot be verified (docs/operations.md)",
        path,
    )
    return key.encode()
