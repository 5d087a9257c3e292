"""The migrations and the table declarations describe the same schema, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from storage.db import Database
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
