"""The E2EE store under the bot's own key.

nio encrypts the pickles of the Olm account, the Olm sessions and the inbound Megolm
sessions (the room keys) with a "pickle key"; its built-in default, DEFAULT_KEY, is the
same for everyone, so it protects nothing. Every Aegis before the store key wrote its store
under that default. At start, before nio opens the store, such a store is re-encrypted
under the bot's key, in one transaction: the device, its identity keys and every room key
received so far stay, so users see the same device and old messages stay readable.

The same path moves a store from its generated key file to a key the operator configures
later (`matrix.store_key`): the file's key is tried as a former key too."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable
from contextlib import closing
from datetime import datetime
from pathlib import Path

from nio import AsyncClientConfig
from nio.crypto import InboundGroupSession, OlmAccount, Session

from config.settings import MatrixSettings

log = logging.getLogger(__name__)

NIO_DEFAULT_KEY: str = AsyncClientConfig().pickle_key


class StoreKeyError(Exception):
    """The store is encrypted with a key the bot was not given: it must not start (it would
    create a new device and lose every room key) nor overwrite the store."""


Rekey = Callable[[bytes, str, str], bytes]


def _account(pickle: bytes, old: str, new: str) -> bytes:
    return bytes(OlmAccount.from_pickle(pickle, old).pickle(new))


def _olm_session(pickle: bytes, old: str, new: str) -> bytes:
    # The creation time is a column of its own; the pickle does not hold it.
    return bytes(Session.from_pickle(pickle, datetime.now(), old).pickle(new))


def _room_key(pickle: bytes, old: str, new: str) -> bytes:
    # Keys, room and forwarding chain are columns of their own; the pickle holds the session.
    return bytes(InboundGroupSession.from_pickle(pickle, "", "", "", old).pickle(new))


# nio's tables (nio/store/models.py) whose column holds a pickle, and how to re-encrypt it.
PICKLES: dict[str, tuple[str, Rekey]] = {
    "accounts": ("account", _account),
    "olmsessions": ("session", _olm_session),
    "megolminboundsessions": ("session", _room_key),
}


def store_file(matrix: MatrixSettings) -> Path:
    """Where nio's DefaultStore keeps its database for this account and device."""
    return matrix.store_path / f"{matrix.user_id}_{matrix.device_id}.db"


def opens(pickle: bytes, key: str) -> bool:
    try:
        OlmAccount.from_pickle(pickle, key)
    except ValueError:  # every vodozemac pickle error is one
        return False
    return True


def adopt_key(matrix: MatrixSettings, key: str, source: str, former: Iterable[str]) -> bool:
    """Makes the store readable with `key` only; True if it had to be re-encrypted from one of
    the `former` keys (nio's default first). A new or empty store is left to nio."""
    path = store_file(matrix)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        if "accounts" not in tables:
            return False
        row = db.execute(
            "SELECT account FROM accounts WHERE user_id = ? AND device_id = ?",
            (matrix.user_id, matrix.device_id),
        ).fetchone()
        if row is None or opens(bytes(row[0]), key):
            return False
        old = next((k for k in former if k != key and opens(bytes(row[0]), k)), None)
        if old is None:
            raise StoreKeyError(
                f"{path}: the E2EE store is encrypted with another key than the one from "
                f"{source}; start with the key it was written with"
            )
        # Freed pages are zeroed, so no copy of a pickle under the old key stays in the file.
        db.execute("PRAGMA secure_delete = ON")
        db.execute("BEGIN IMMEDIATE")
        try:
            for table in tables & PICKLES.keys():
                _rekey(db, path, table, old, key)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return True


def _rekey(db: sqlite3.Connection, path: Path, table: str, old: str, new: str) -> None:
    column, rekey = PICKLES[table]
    for rowid, pickle in db.execute(f"SELECT rowid, {column} FROM {table}").fetchall():
        try:
            fresh = rekey(bytes(pickle), old, new)
        except ValueError as exc:
            # All or nothing: a store half under each key would open under neither.
            raise StoreKeyError(
                f"{path}: {table} row {rowid} cannot be read with the former key ({exc}); "
                "nothing was changed"
            ) from None
        db.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (fresh, rowid))
