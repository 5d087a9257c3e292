"""Database fixtures: every storage test runs on SQLite, and on PostgreSQL when
AEGIS_TEST_DATABASE_URL names one (CI always sets it, so a missing server fails, not skips).

Each test gets a database of its own. A test that asks for `database` gets it migrated: the
schema is migrated once per session (per xdist worker) into a template, and each test gets a
copy of it (a file copy on SQLite, `CREATE DATABASE … TEMPLATE` on PostgreSQL), because
running every migration for each of some 500 tests was minutes of CI. The copy is what the
migrations produce, and `database` still calls `migrate()` on it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database

PG_URL = os.environ.get("AEGIS_TEST_DATABASE_URL", "")
# The audit key of databases tests write directly (the bot in e2e tests generates its own).
TEST_AUDIT_KEY = "test-audit-key-0123456789abcdef0123456789"
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]
# A template still held by the engine that migrated it cannot be copied; its connections
# close within moments of dispose().
TEMPLATE_BUSY_RETRIES = 100


async def _admin(statement: str) -> None:
    """One statement on the server's maintenance database (CREATE/DROP DATABASE)."""
    url = make_url(PG_URL)
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create_pg_database(template: str | None = None) -> str:
    """A fresh database per test, so tests never see each other's rows; a copy of `template`
    when given, else empty."""
    name = "aegis_" + secrets.token_hex(6)
    statement = f'CREATE DATABASE "{name}"'
    if template is None:
        await _admin(statement)
    else:
        for attempt in range(TEMPLATE_BUSY_RETRIES):
            try:
                await _admin(f'{statement} TEMPLATE "{template}"')
                break
            except asyncpg.ObjectInUseError:
                if attempt == TEMPLATE_BUSY_RETRIES - 1:
                    raise
                await asyncio.sleep(0.05)
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


async def drop_pg_database(db_url: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{make_url(db_url).database}" WITH (FORCE)')


class SchemaTemplates:
    """The migrated schema, made once per backend on first use and copied for each test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._sqlite: Path | None = None
        self._pg: str | None = None  # URL of the migrated PostgreSQL template

    async def sqlite_copy(self, target: Path) -> None:
        if self._sqlite is None:
            path = self.root / "template.db"
            await _migrate(f"sqlite+aiosqlite:///{path}")
            # Closing the last connection checkpoints the WAL into the file; copy both if not.
            self._sqlite = path
        for suffix in ("", "-wal"):
            source = self._sqlite.with_name(self._sqlite.name + suffix)
            if source.exists():
                await asyncio.to_thread(
                    shutil.copyfile, source, target.with_name(target.name + suffix)
                )

    async def pg_copy(self) -> str:
        if self._pg is None:
            url = await create_pg_database()
            await _migrate(url)
            self._pg = url
        return await create_pg_database(template=make_url(self._pg).database)

    async def close(self) -> None:
        if self._pg is not None:
            await drop_pg_database(self._pg)


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await db.migrate()
    finally:
        await db.close()


@pytest.fixture(scope="session")
async def schema_templates(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[SchemaTemplates]:
    templates = SchemaTemplates(tmp_path_factory.mktemp("schema-template"))
    yield templates
    await templates.close()


@pytest.fixture(params=BACKENDS)
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, schema_templates: SchemaTemplates
) -> AsyncIterator[str]:
    """Empty, unless the test also asks for `database`: then already at the newest schema."""
    migrated = "database" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "aegis.db"
        if migrated:
            await schema_templates.sqlite_copy(path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    url = await (schema_templates.pg_copy() if migrated else create_pg_database())
    yield url
    await drop_pg_database(url)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url, TEST_AUDIT_KEY.encode())
    await db.migrate()
    yield db
    await db.close()


@pytest.fixture
def pg_required() -> Iterator[None]:
    """CI sets the variable; locally a developer without PostgreSQL still runs the rest."""
    if os.environ.get("CI") and not PG_URL:
        pytest.fail("CI must set AEGIS_TEST_DATABASE_URL")
    yield


@contextlib.asynccontextmanager
async def insider(db: Database) -> AsyncIterator[AsyncSession]:
    """A transaction of someone who owns the schema and tampers with the audit trail: on
    PostgreSQL they first switch off its guard (migration 0018), as an owner may and the
    runtime role may not (tests/test_pg_roles.py), then back on."""
    async with db.transaction() as session:
        if not db.is_sqlite:
            await session.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        yield session
        if not db.is_sqlite:
            await session.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))
