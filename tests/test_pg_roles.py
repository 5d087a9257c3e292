"""PostgreSQL roles: the bot runs as a role that may only add to and read the audit trail,
after migrating as the role that owns the schema, and a trigger refuses rewrites even from
that owner; the purge's tombstone goes through the one function allowed to write it.

Each test makes two throwaway login roles (neither superuser) and a database owned by the
migration role, the way docs/operations.md sets up production, and drops them after."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from storage import audit
from storage.db import Database
from storage.tables import Base
from tests.support.databases import (
    PG_URL,
    TEST_AUDIT_KEY,
    create_pg_database,
    drop_pg_database,
)
from tests.test_retention import (
    LIAISON,
    YEARS,
    make_chat,
    old_dossier_full_of_personal_data,
    open_dossier,
    purge,
)

pytestmark = pytest.mark.skipif(not PG_URL, reason="needs AEGIS_TEST_DATABASE_URL")

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "example.yaml"


@dataclass(frozen=True)
class Roles:
    owner_url: str  # the migration role, owner of the database
    runtime_url: str  # the role the bot runs as
    owner: str


async def _superuser(statements: list[str], database: str | None = None) -> None:
    url = make_url(PG_URL)
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        database=database or url.database,
    )
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
async def roles(pg_required: None) -> AsyncIterator[Roles]:
    suffix = secrets.token_hex(4)
    owner, runtime = f"aegis_owner_{suffix}", f"aegis_app_{suffix}"
    attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
    db_url = ""
    try:
        await _superuser([f"CREATE ROLE {owner} {attributes}"])
        await _superuser([f"CREATE ROLE {runtime} {attributes}"])
        db_url = await create_pg_database()
        name = make_url(db_url).database
        await _superuser([f'ALTER DATABASE "{name}" OWNER TO {owner}'])
        # As docs/operations.md sets it up: only the owner creates objects in the schema.
        await _superuser(["REVOKE CREATE ON SCHEMA public FROM PUBLIC"], database=name)
        as_role = make_url(db_url).set(password=None)
        yield Roles(
            as_role.set(username=owner).render_as_string(hide_password=False),
            as_role.set(username=runtime).render_as_string(hide_password=False),
            owner,
        )
    finally:
        if db_url:
            await drop_pg_database(db_url)
        await _superuser([f"DROP ROLE IF EXISTS {runtime}", f"DROP ROLE IF EXISTS {owner}"])


@pytest.fixture
async def runtime_db(roles: Roles) -> AsyncIterator[Database]:
    """The bot's database: connected as the runtime role, migrated as the owner."""
    db = Database(roles.runtime_url, TEST_AUDIT_KEY.encode(), migrate_url=roles.owner_url)
    await db.migrate()
    yield db
    await db.close()


@pytest.fixture
async def owner_db(roles: Roles, runtime_db: Database) -> AsyncIterator[Database]:
    db = Database(roles.owner_url, TEST_AUDIT_KEY.encode())
    yield db
    await db.close()


async def append(db: Database, n: int) -> int:
    async with db.transaction() as s:
        return await audit.append(
            s, audit.AuditRecord(f"@u{n}:x", "liaison", "test", "D-1", f"$e{n}", {"n": n}), NOW
        )


TOMBSTONE_ON = "SELECT set_config('aegis.audit_tombstone', 'on', true)"


async def refused(db: Database, statement: str, *, tombstone_on: bool = False) -> str:
    """The error text PostgreSQL gave for a statement that must not go through; with
    `tombstone_on`, after setting what the tombstone function sets."""
    with pytest.raises(DBAPIError) as caught:
        async with db.transaction() as s:
            if tombstone_on:
                await s.execute(text(TOMBSTONE_ON))
            await s.execute(text(statement))
    return str(caught.value.orig)


async def test_the_runtime_role_may_only_insert_and_select_the_audit_trail(
    roles: Roles, runtime_db: Database
) -> None:
    for n in range(3):
        await append(runtime_db, n)
    for statement in (
        "UPDATE audit_log SET detail = '{}' WHERE seq = 1",
        "UPDATE audit_log SET actor = '@mallory:x' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 3",
        "TRUNCATE audit_log CASCADE",
        "UPDATE audit_reads SET dossier_ref = 'D-2026-0099'",
        "DELETE FROM audit_reads",
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
        "DROP FUNCTION aegis_audit_tombstone(integer[])",
    ):
        error = await refused(runtime_db, statement)
        assert "permission denied" in error or "must be owner" in error, (statement, error)
    error = await refused(runtime_db, "UPDATE audit_log SET detail = '{}'", tombstone_on=True)
    assert "permission denied" in error
    async with runtime_db.snapshot() as s:
        assert (await audit.verify(s)).ok
        owners = await s.scalars(
            text("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
        )
        assert list(owners) == [roles.owner]  # the bot owns nothing


async def test_the_trigger_refuses_the_owners_own_rewrites(
    runtime_db: Database, owner_db: Database
) -> None:
    for n in range(3):
        await append(runtime_db, n)
    for statement in (
        "UPDATE audit_log SET detail = '{}' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 3",
        "TRUNCATE audit_log CASCADE",
    ):
        error = await refused(owner_db, statement)
        assert "audit_log is append-only" in error, (statement, error)
    # The setting alone is not enough: only `detail` may change under it.
    rewrite = "UPDATE audit_log SET actor = '@mallory:x', detail = '{}' WHERE seq = 2"
    assert "append-only" in await refused(owner_db, rewrite, tombstone_on=True)
    async with owner_db.transaction() as s:
        # The function leaves the setting off behind it: a plain UPDATE after it is refused.
        await audit.tombstone(s, [1])
        assert not await s.scalar(text("SELECT current_setting('aegis.audit_tombstone', true)"))
    assert "append-only" in await refused(
        owner_db, "UPDATE audit_log SET detail = '{}' WHERE seq = 2"
    )


async def test_the_runtime_role_tombstones_through_the_function_and_nothing_else(
    runtime_db: Database,
) -> None:
    for n in range(4):
        await append(runtime_db, n)
    async with runtime_db.snapshot() as s:
        before = (await s.execute(text("SELECT * FROM audit_log ORDER BY seq"))).all()
    async with runtime_db.transaction() as s:
        await audit.tombstone(s, [1, 3])
    async with runtime_db.snapshot() as s:
        after = (await s.execute(text("SELECT * FROM audit_log ORDER BY seq"))).all()
    columns = [c.name for c in Base.metadata.tables["audit_log"].columns]
    for old, new in zip(before, after, strict=True):
        old_row, new_row = (
            dict(zip(columns, old, strict=True)),
            dict(zip(columns, new, strict=True)),
        )
        if new_row["seq"] in (1, 3):
            assert new_row["detail"] == audit.TOMBSTONE  # the function's literal is audit's
            new_row["detail"] = old_row["detail"]
        assert new_row == old_row


async def test_the_bot_works_as_the_runtime_role_after_migrating_as_the_owner(
    roles: Roles, runtime_db: Database
) -> None:
    """Open dossiers, work on them, purge, verify: every table the workload touches is
    granted, and a second migration (at every start) changes nothing."""
    chat = make_chat(runtime_db)
    old = await old_dossier_full_of_personal_data(chat)
    chat.advance(days=365 * YEARS + 30)
    other = await open_dossier(chat, "Someone else")
    await chat.say(LIAISON, f"!dossier show {other}")
    done = await purge(chat)
    assert list(done) == [old]
    await runtime_db.migrate()
    async with runtime_db.snapshot() as s:
        assert (await audit.verify(s)).ok
        purged = await s.scalar(
            text("SELECT count(*) FROM audit_log WHERE detail = :t"), {"t": audit.TOMBSTONE}
        )
    assert purged
    # The operator's commands: `aegis migrate` with both URLs, then the bot with the
    # runtime URL alone finds the schema current and verifies the trail.
    assert aegis("migrate", url=roles.runtime_url, migrate_url=roles.owner_url).returncode == 0
    verified = aegis("audit", "verify", "--offline", url=roles.runtime_url)
    assert verified.returncode == 0 and "audit trail intact" in verified.stdout, verified.stderr


def aegis(*args: str, url: str, migrate_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
    env |= {
        "AEGIS_DATABASE__URL": url,
        "AEGIS_MATRIX__PASSWORD": "unused",
        "AEGIS_AUDIT__KEY": TEST_AUDIT_KEY,
    }
    if migrate_url:
        env["AEGIS_DATABASE__MIGRATE_URL"] = migrate_url
    return subprocess.run(
        [sys.executable, "-m", "bot", *args, "-c", str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
