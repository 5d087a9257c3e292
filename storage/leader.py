"""Active/standby: of the Aegis processes sharing one database, exactly one is active.

The active process holds a lock that dies with it:

- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) on a dedicated,
  autocommit connection kept open for as long as the process is active. The server drops the
  lock when the session ends: at once when the process dies (its kernel closes the socket),
  within about 10 s when its host vanishes (TCP keepalives are tightened on that session).
  Advisory locks are per database, so deployments on other databases do not interfere.
- SQLite: an exclusive `flock` on `<database file>.lock`, which the kernel drops when the
  process dies, SIGKILL included. This only works between processes on one machine.

A standby polls every second and becomes active as soon as the lock is free. While active,
`watch` checks the lock every second. If the lock connection dies (PostgreSQL restarted, a
network cut) the lock is gone with it: `watch` takes it back as soon as the database answers,
unless another instance holds it by then, in which case this one must stop being active:
`watch` sets the stop event and raises `LeadershipLost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

# "AEGIS_LD" as a 64-bit integer: the advisory-lock key of the leader lock.
LOCK_KEY = 0x41454749535F4C44
POLL_SECONDS = 1.0
# How long a lock query may take before the connection counts as dead.
QUERY_TIMEOUT = 5.0
# Server side, so that a vanished host's session (and lock) ends in ~10 s rather than the
# operating system's default of two hours: first probe after 4 s idle, 3 probes 2 s apart.
SESSION_SETTINGS = (
    "SET tcp_keepalives_idle = 4",
    "SET tcp_keepalives_interval = 2",
    "SET tcp_keepalives_count = 3",
)
# Failures that mean "the database cannot tell right now", never "someone else is active".
UNAVAILABLE = (SQLAlchemyError, OSError, TimeoutError)


class LeadershipLost(Exception):
    """Another instance took the leader lock while this one had lost its database session."""


class _Lock(Protocol):
    where: str

    async def try_acquire(self) -> bool:
        """True if this process holds the lock now; raises UNAVAILABLE if it cannot tell."""
        ...

    async def still_held(self) -> bool: ...

    async def release(self) -> None: ...


class FileLock:
    """`flock` on a file next to the SQLite database; the kernel releases it on death."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = f"file lock {path}"
        self._fd: int | None = None

    async def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by children
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        # For people looking at the file: which process is active.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    async def still_held(self) -> bool:
        """An flock cannot be taken away, but the file can be deleted or replaced, after which
        a new process would lock a different file: that counts as lost."""
        if self._fd is None:
            return False
        held = os.fstat(self._fd)
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            on_disk = None
        if on_disk and (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino):
            return True
        await self.release()  # a lock on a file nobody else will open protects nothing
        return False

    async def release(self) -> None:
        # Never unlink: a waiter may have the file open already and would lock a dead inode.
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class AdvisoryLock:
    """A PostgreSQL session advisory lock on a connection of its own, outside any pool."""

    def __init__(self, url: str, key: int = LOCK_KEY, timeout: float = QUERY_TIMEOUT) -> None:
        self.key = key
        self.timeout = timeout
        parsed = make_url(url)
        self.where = f"advisory lock {key} on {parsed.host}/{parsed.database}"
        self._engine: AsyncEngine = create_async_engine(
            url, poolclass=NullPool, isolation_level="AUTOCOMMIT"
        )
        self._conn: AsyncConnection | None = None

    async def try_acquire(self) -> bool:
        if self._conn is not None:
            return True
        conn = await asyncio.wait_for(self._engine.connect(), self.timeout)
        try:
            for statement in SESSION_SETTINGS:
                await asyncio.wait_for(conn.execute(text(statement)), self.timeout)
            result = await asyncio.wait_for(
                conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}),
                self.timeout,
            )
            got = bool(result.scalar_one())
        except BaseException:
            await self._discard(conn)
            raise
        if not got:
            await self._discard(conn)
            return False
        self._conn = conn
        return True

    async def still_held(self) -> bool:
        """The lock lives exactly as long as its session: a session that answers holds it."""
        if self._conn is None:
            return False
        try:
            await asyncio.wait_for(self._conn.execute(text("SELECT 1")), self.timeout)
        except Exception:  # whatever broke the session, the lock went with it
            conn, self._conn = self._conn, None
            await self._discard(conn)
            return False
        return True

    async def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(*UNAVAILABLE):
                await asyncio.wait_for(
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key}),
                    self.timeout,
                )
            await self._discard(conn)
        await self._engine.dispose()

    async def _discard(self, conn: AsyncConnection) -> None:
        """Closing the session ends the lock; a dead connection is dropped without waiting."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), self.timeout)
            return
        with contextlib.suppress(Exception):
            await conn.invalidate()


def lock_for(url: str, key: int = LOCK_KEY) -> _Lock | None:
    """The leader lock for a database URL; None for an in-memory SQLite database, which no
    second process can share anyway."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return None
        return FileLock(Path(parsed.database + ".lock"))
    return AdvisoryLock(url, key)


async def _pause(seconds: float, stop: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class Leadership:
    """`acquire` waits as the standby; `watch` runs beside the active work; `release` last.

    ::

        leadership = Leadership(url)
        if await leadership.acquire(stop):
            watcher = asyncio.create_task(leadership.watch(stop))
            ...  # active until stop is set
        await leadership.release()
    """

    def __init__(self, url: str, poll: float = POLL_SECONDS, key: int = LOCK_KEY) -> None:
        self.poll = poll
        self._lock = lock_for(url, key)
        self.where = self._lock.where if self._lock else "no lock (in-memory database)"
        self.held = False
        self.lost = False

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Polls until this process holds the lock (True) or `stop` is set first (False)."""
        if self._lock is None:
            self.held = True
            return True
        waiting = False
        failures = 0
        while not stop.is_set():
            try:
                got = await self._lock.try_acquire()
            except UNAVAILABLE as exc:
                if failures % 60 == 0:  # the first failure, then about once a minute
                    log.warning("leader lock: database unavailable, retrying: %r", exc)
                failures += 1
            else:
                failures = 0
                if got:
                    self.held = True
                    log.info("active: this instance holds the leader lock (%s)", self.where)
                    return True
                if not waiting:
                    log.info("standby: waiting for the active instance (%s)", self.where)
                waiting = True
            await _pause(self.poll, stop)
        return False

    async def watch(self, stop: asyncio.Event) -> None:
        """While active, until `stop`: checks the lock each poll and takes a lost one back.
        If another instance holds it by then, sets `stop` and raises LeadershipLost."""
        lock = self._lock
        if lock is None:
            await stop.wait()
            return
        while not stop.is_set():
            await _pause(self.poll, stop)
            if stop.is_set():
                return
            if self.held:
                with contextlib.suppress(Exception):  # a check that fails proves nothing held
                    if await lock.still_held():
                        continue
                self.held = False
                log.warning("leader lock lost (%s); taking it back", self.where)
            try:
                got = await lock.try_acquire()
            except Exception as exc:  # the watch must outlive any failure
                log.debug("leader lock: not taken back yet: %r", exc)
                # Every write goes through the database, so this process commits nothing
                # meanwhile; whoever reaches the database first holds the lock after.
                continue
            if got:
                self.held = True
                log.warning("leader lock taken back (%s)", self.where)
                continue
            self.lost = True
            log.error("another instance holds the leader lock now; stepping down")
            stop.set()
            raise LeadershipLost(self.where)

    async def release(self) -> None:
        self.held = False
        if self._lock is not None:
            await self._lock.release()
