"""The migrations and the table declarations describe the same schema, on both backends."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from storage.db import MIGRATIONS, SCHEMA_HEAD, Database, schema_revision
from storage.tables import Base


def _diff(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def test_migrated_schema_matches_the_declarations(database: Database) -> None:
    async with database.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


async def test_migrating_twice_is_harmless(database: Database) -> None:
    await database.migrate()
    async with database.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


def test_the_known_head_is_alembics_head() -> None:
    """migrate() skips alembic when the database is at SCHEMA_HEAD; a new migration must
    move it, or databases would never be upgraded."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [SCHEMA_HEAD]


async def test_an_empty_database_is_migrated_and_then_recognised_as_current(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/empty.db")
    try:
        async with db.engine.connect() as conn:
            assert await conn.run_sync(schema_revision) is None
        await db.migrate()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(schema_revision) == SCHEMA_HEAD
            assert await conn.run_sync(_diff) == []
    finally:
        await db.close()
