"""Database fixtures: every storage test runs on SQLite, and on PostgreSQL when
AEGIS_TEST_DATABASE_URL names one (CI always sets it, so a missing server fails, not skips)."""

from __future__ import annotations

import contextlib
import os
import secrets
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


async def create_pg_database() -> str:
    """A fresh database per test, so tests never see each other's rows."""
    url = make_url(PG_URL)
    name = "aegis_" + secrets.token_hex(6)
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url.set(database=name).render_as_string(hide_password=False)


async def drop_pg_database(db_url: str) -> None:
    url = make_url(PG_URL)
    name = make_url(db_url).database
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'aegis.db'}"
        return
    url = await create_pg_database()
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
