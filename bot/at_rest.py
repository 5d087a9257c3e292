"""Secrets and files at rest: who else on the host can read what the bot keeps.

The bot's files hold the room keys (the E2EE store), the access token (credentials.json),
the store key and, on SQLite, every dossier. The process runs with umask 077, so whatever it
or a library creates is private; the store directory is 0700, the files 0600. At start,
before anything is opened, a looser mode (left by an earlier version, a copy, a restore) is
named in a warning and tightened; the database file and nio's store file are created 0600
before SQLite ever sees them, so they are private whatever the umask of the caller."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.store_key import NIO_DEFAULT_KEY, adopt_key, store_file
from config.key_files import Key, generated_store_key, store_key_file
from config.loader import ConfigError
from config.settings import MatrixSettings, Settings

log = logging.getLogger(__name__)

UMASK = 0o077
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
# Beside an SQLite database: its journals (same content) and the leader lock.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal", ".lock")


def restrict_umask() -> None:
    """First thing in every CLI command: any file created from here on is the user's alone."""
    os.umask(UMASK)


def sqlite_file(database_url: str) -> Path | None:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def prepare(settings: Settings, key: Key) -> None:
    """Before the database and the E2EE store are opened: modes, then the store's key."""
    matrix = settings.matrix
    matrix.store_path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    private = [matrix.store_path, *sorted(matrix.store_path.iterdir()), store_key_file(matrix)]
    database = sqlite_file(settings.database.url)
    if database is not None:
        _create_private(database)
        private += [database, *(database.with_name(database.name + s) for s in SQLITE_COMPANIONS)]
    tighten(private)
    if adopt_key(matrix, key.value, key.source, _former_keys(matrix)):
        log.warning(
            "the E2EE store %s was encrypted with a former key (nio's default, readable by "
            "anyone); re-encrypted it with the key from %s, keeping device %s and its room keys",
            store_file(matrix),
            key.source,
            matrix.device_id,
        )
    _create_private(store_file(matrix))


def _former_keys(matrix: MatrixSettings) -> Iterator[str]:
    """Lazily: the key file is read only for a store its configured key does not open, so
    a stale file left beside the store never stops a start."""
    yield NIO_DEFAULT_KEY
    if matrix.store_key is not None:
        with contextlib.suppress(ConfigError):
            generated = generated_store_key(matrix)
            if generated is not None:
                yield generated


def tighten(paths: Iterable[Path]) -> None:
    """Directories to 0700, files to 0600, each change named in a warning with the mode it
    had. Symbolic links are left alone: chmod would change whatever they point at."""
    for path in paths:
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(info.st_mode):
            continue
        wanted = PRIVATE_DIR if stat.S_ISDIR(info.st_mode) else PRIVATE_FILE
        mode = stat.S_IMODE(info.st_mode)
        if not mode & ~wanted:
            continue
        try:
            path.chmod(mode & wanted)
        except OSError as exc:
            log.warning(
                "%s has mode %04o, looser than %04o, and cannot be tightened: %s",
                path,
                mode,
                wanted,
                exc.strerror,
            )
            continue
        log.warning(
            "%s had mode %04o, looser than %04o: set to %04o", path, mode, wanted, mode & wanted
        )


def _create_private(path: Path) -> None:
    """An empty file is a valid empty SQLite database; SQLite gives its -wal, -shm and
    -journal files the database file's own mode."""
    path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
