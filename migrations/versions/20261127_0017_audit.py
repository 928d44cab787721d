"""audit log append-only, indexed by who and what; journeys indexed by their wake event

Revision ID: 0017_audit
Revises: 0016_lifecycle
Create Date: 2026-11-27 18:05:00.000000

The app has no route that edits or deletes an audit entry; these triggers make
an UPDATE or DELETE through plain SQL fail as well, on both databases. (On
PostgreSQL a superuser can still switch triggers off; the log guards against
mistakes and the application's own credentials, not against the database owner.)

Retention deletes old events; ``ix_journeys_wake_event`` lets it (and the foreign
key's ON DELETE SET NULL) find the journeys that point at one without a scan.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017_audit'
down_revision: str | None = '0016_lifecycle'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MESSAGE = "audit_log is append-only: entries cannot be changed or deleted"

_PG_FUNCTION = f"""
CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '{_MESSAGE}' USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql
"""
_PG_TRIGGERS = (
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
)
_SQLITE_TRIGGERS = tuple(
    f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
    f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END"
    for verb in ("UPDATE", "DELETE")
)


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_actor", ["actor_type", "actor_id"], unique=False)
        batch_op.create_index("ix_audit_log_action", ["action"], unique=False)
    with op.batch_alter_table("journeys", schema=None) as batch_op:
        batch_op.create_index(
            "ix_journeys_wake_event",
            ["wake_event_id"],
            unique=False,
            postgresql_where=sa.text("wake_event_id IS NOT NULL"),
            sqlite_where=sa.text("wake_event_id IS NOT NULL"),
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for statement in _PG_TRIGGERS:
            op.execute(statement)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in ("no_update", "no_delete", "no_truncate"):
            op.execute(f"DROP TRIGGER audit_log_{name} ON audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
    else:
        for name in ("no_update", "no_delete"):
            op.execute(f"DROP TRIGGER audit_log_{name}")
    with op.batch_alter_table("journeys", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_journeys_wake_event",
            postgresql_where=sa.text("wake_event_id IS NOT NULL"),
            sqlite_where=sa.text("wake_event_id IS NOT NULL"),
        )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_action")
        batch_op.drop_index("ix_audit_log_actor")
