"""Engine, transactions and migrations for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from storage.grants import grant_runtime

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest revision under migrations/versions (a test holds it to alembic's own answer).
SCHEMA_HEAD = "0020_recent_first"
_READ_ONLY = "aegis_read_only"
# Session.info key under which the audit chain's key reaches storage/audit.py.
AUDIT_KEY = "aegis_audit_key"


class Database:
    """One engine per process. SQLite transactions begin IMMEDIATE so that concurrent writers
    queue on the database lock instead of failing half-way with 'database is locked'. Within
    the process they also queue on an asyncio lock first: SQLite's busy handler polls with
    sleeps of 1 to 100 ms, so two of our own tasks meeting on the file lock (the sync loop
    and the sender, at every reply) would cost milliseconds each time for nothing."""

    def __init__(
        self, url: str, audit_key: bytes | None = None, *, migrate_url: str | None = None
    ) -> None:
        """`audit_key` signs the audit chain (config/audit_key.py); every session carries
        it, so the workflow appends entries without ever seeing it. Without it the
        database can be read, but an audit entry cannot be written. `migrate_url`
        (PostgreSQL): the role that owns the schema, when the bot runs as another one."""
        self.url = url
        # PostgreSQL only: the role that owns the schema, when the bot runs as another one.
        self.migrate_url = migrate_url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # A failed statement's error names its statement, never its values: those are the
        # names, reports and texts the bot guards, and errors end up in logs.
        kwargs: dict[str, Any] = {"hide_parameters": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _serialise_sqlite_writers(self.engine)
        else:
            _classify_outages(self.engine)
        info = {} if audit_key is None else {AUDIT_KEY: audit_key}
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False, info=info)
        self._writer = asyncio.Lock() if self.is_sqlite else contextlib.nullcontext()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """Everything inside commits together or not at all. Never nest two: on SQLite the
        inner one would wait for the outer one forever."""
        async with self._writer, self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncSession]:
        """A consistent read that writes nothing. On SQLite it takes neither the file's write
        lock nor the writers' queue, so the sender can read its next message while the sync
        loop commits (WAL lets one writer and many readers work at once)."""
        async with self._sessions() as session, session.begin():
            await session.connection(execution_options={_READ_ONLY: True})
            yield session

    async def migrate(self) -> None:
        """Upgrades to the newest schema. A database already there is recognised with one
        query, so an ordinary start neither imports alembic nor keeps it in memory.

        With a migration URL, the upgrade runs on a connection of its own as that role,
        which then grants the runtime role (the one of `url`) what it needs (storage/grants.py):
        at every call, so a schema made before the roles were split is brought in line."""
        if self.migrate_url and not self.is_sqlite:
            await self._migrate_as_owner(self.migrate_url)
            return
        async with self.snapshot() as session:
            connection = await session.connection()
            if await connection.run_sync(schema_revision) == SCHEMA_HEAD:
                return
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def _migrate_as_owner(self, migrate_url: str) -> None:
        async with self.snapshot() as session:
            runtime_role = str(await session.scalar(text("SELECT current_user")))
        owner = create_async_engine(migrate_url, poolclass=NullPool, hide_parameters=True)
        try:
            async with owner.begin() as conn:
                await conn.run_sync(_upgrade_and_grant, runtime_role)
        finally:
            await owner.dispose()

    async def compact_log(self) -> None:
        """After an erasure on SQLite: old page images in the write-ahead log still hold
        what was erased; a TRUNCATE checkpoint copies the log into the database (where
        secure_delete zeroed it) and empties the log file. It waits for readers on older
        snapshots (the busy timeout); PostgreSQL needs VACUUM instead (docs/operations.md)."""
        path = make_url(self.url).database
        if not self.is_sqlite or not path or path == ":memory:":
            return
        await asyncio.to_thread(_checkpoint, path)

    async def ping(self) -> None:
        """A readiness probe must not queue for the write lock behind a busy writer."""
        async with self.snapshot() as session:
            await session.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()


def schema_revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _upgrade_and_grant(connection: Connection, runtime_role: str) -> None:
    if schema_revision(connection) != SCHEMA_HEAD:
        _upgrade(connection)
    if connection.execute(text("SELECT current_user")).scalar_one() != runtime_role:
        grant_runtime(connection, runtime_role)


def _checkpoint(path: str) -> None:
    """Outside any transaction (a checkpoint cannot run inside one), on a connection of its
    own with secure_delete like every other."""
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        connection.execute("PRAGMA secure_delete=ON")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        connection.close()


def _upgrade(connection: Connection) -> None:
    from alembic import command  # only when there is something to upgrade (see migrate)
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def _serialise_sqlite_writers(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Deleted and overwritten content is zeroed in the file, not left in free pages: a
        # purge or the outbox's dropped content must not be readable from the raw bytes.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _classify_outages(engine: AsyncEngine) -> None:
    """asyncpg reports a server that is restarting ("the database system is shutting down",
    "connection was closed in the middle of operation", "terminating connection due to
    administrator command") as a plain DBAPIError, which callers cannot tell from a bug. Such
    errors become OperationalError, the class every retry loop treats as an outage."""
    import asyncpg  # type: ignore[import-untyped]

    outage = (
        asyncpg.PostgresConnectionError,  # 08xxx and a connection lost mid-operation
        asyncpg.exceptions.OperatorInterventionError,  # 57xxx: shutdown, starting up
        asyncpg.exceptions.InsufficientResourcesError,  # 53xxx: too many connections, disk full
    )

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context: ExceptionContext) -> OperationalError | None:
        error = context.sqlalchemy_exception
        cause = context.original_exception.__cause__
        if error is None or isinstance(error, OperationalError):
            return None
        if not (context.is_disconnect or isinstance(cause, outage)):
            return None
        return OperationalError(
            context.statement,
            context.parameters,
            context.original_exception,
            connection_invalidated=context.is_disconnect,
            hide_parameters=True,
        )
