"""PostgreSQL: the audit trail refuses rewrites, also from the role that owns it.

A trigger refuses every UPDATE, DELETE and TRUNCATE of `audit_log`, except an UPDATE that
changes nothing but `detail` while the transaction-local setting `aegis.audit_tombstone` is
on. Only `aegis_audit_tombstone(seqs)` sets it: a SECURITY DEFINER function owned by the
role that ran this migration, which writes the purge's tombstone into the details of the
given entries and nothing else. The runtime role gets INSERT and SELECT on the table and
EXECUTE on the function (storage/grants.py, at every migration step), so the purge works
and nothing else can change a recorded entry. SQLite has neither roles nor this trigger:
there the purge's plain UPDATE stays, and the hash chain is the only guard.

The tombstone is written here as a literal rather than imported: a migration must keep
meaning what it meant when it ran. tests/test_pg_roles.py holds it to storage.audit.TOMBSTONE.

Revision ID: 0018_audit_guard
Revises: 0017_keyed_audit
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_audit_guard"
down_revision = "0017_keyed_audit"
branch_labels = None
depends_on = None

GUARD = """
CREATE FUNCTION aegis_audit_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND current_setting('aegis.audit_tombstone', true) = 'on' THEN
        IF to_jsonb(NEW) - 'detail' = to_jsonb(OLD) - 'detail' THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'a purge tombstones details through aegis_audit_tombstone(seqs)';
END
$$
"""

TOMBSTONE_FUNCTION = """
CREATE FUNCTION aegis_audit_tombstone(seqs integer[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    changed integer;
BEGIN
    PERFORM set_config('aegis.audit_tombstone', 'on', true);
    UPDATE {table} SET detail = '{{"purged": true}}' WHERE seq = ANY(seqs);
    GET DIAGNOSTICS changed = ROW_COUNT;
    PERFORM set_config('aegis.audit_tombstone', '', true);
    RETURN changed;
END
$$
"""


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    schema = bind.execute(sa.text("SELECT current_schema()")).scalar_one()
    # The function runs with an empty search path, so it names its table in full.
    table = f"{bind.dialect.identifier_preparer.quote(schema)}.audit_log"
    op.execute(GUARD)
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION aegis_audit_guard()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION aegis_audit_guard()"
    )
    op.execute(TOMBSTONE_FUNCTION.format(table=table))
    # Functions are executable by PUBLIC unless revoked; only the runtime role gets it back.
    op.execute("REVOKE ALL ON FUNCTION aegis_audit_tombstone(integer[]) FROM PUBLIC")
    op.execute("REVOKE ALL ON TABLE audit_log, audit_reads FROM PUBLIC")
