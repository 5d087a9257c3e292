"""Alembic environment: runs on the connection that storage.db hands over, so migrations
share the application's engine and driver (aiosqlite or asyncpg)."""

from alembic import context

from storage.tables import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
