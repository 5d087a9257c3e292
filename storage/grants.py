"""PostgreSQL privileges of the runtime role, granted by the migration role.

With `database.migrate_url` the schema belongs to the migration role, and the bot runs as
the role of `database.url`, which owns nothing. After every migration step (storage/db.py)
the migration role brings the runtime role's privileges to exactly this, on every table of
the schema that exists by then, so a table added by a later migration is covered the next
time the bot starts:

- `audit_log`: SELECT and INSERT. The purge's tombstone goes through
  `aegis_audit_tombstone(seqs)` (migration 0018), the only function it may EXECUTE.
- `audit_reads`, the index of reads: SELECT and INSERT. It holds dossier IDs only, so the
  purge leaves it alone, and `aegis audit verify` holds it to the entries it files.
- `audit_salts`, where it exists: SELECT, INSERT and DELETE; a purge deletes the salts of
  the entries it tombstones, nothing ever rewrites one.
- `alembic_version`: SELECT, to recognise a current schema at start.
- every other table: SELECT, INSERT, UPDATE and DELETE; sequences: USAGE and SELECT.

Privileges the runtime role held before (say, ALL from a hand-made setup) are revoked first.
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect, text

TOMBSTONE_FUNCTION = "aegis_audit_tombstone(integer[])"
PRIVILEGES = {
    "audit_log": "SELECT, INSERT",
    "audit_reads": "SELECT, INSERT",
    "audit_salts": "SELECT, INSERT, DELETE",
    "alembic_version": "SELECT",
}
DEFAULT_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"


def grant_runtime(connection: Connection, role: str) -> None:
    """Run as the owner of the schema's objects; `role` is the runtime role's name."""
    quote = connection.dialect.identifier_preparer.quote
    schema = connection.execute(text("SELECT current_schema()")).scalar_one()
    grantee, where = quote(role), quote(schema)
    connection.execute(text(f"GRANT USAGE ON SCHEMA {where} TO {grantee}"))
    for table in sorted(inspect(connection).get_table_names(schema)):
        name = f"{where}.{quote(table)}"
        privileges = PRIVILEGES.get(table, DEFAULT_PRIVILEGES)
        connection.execute(text(f"REVOKE ALL ON TABLE {name} FROM {grantee}"))
        connection.execute(text(f"GRANT {privileges} ON TABLE {name} TO {grantee}"))
    connection.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {where} TO {grantee}"))
    connection.execute(text(f"GRANT EXECUTE ON FUNCTION {where}.{TOMBSTONE_FUNCTION} TO {grantee}"))
