"""runs: indexes for the Runs list's keyset paging (all runs, by status, flow, version)

Revision ID: 0018_runs
Revises: 0017_audit
Create Date: 2026-11-27 18:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0018_runs'
down_revision: str | None = '0017_audit'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_journeys_entered": ["entered_at", "id"],
    "ix_journeys_status_entered": ["status", "entered_at", "id"],
    "ix_journeys_flow_entered": ["flow_id", "entered_at", "id"],
    "ix_journeys_version_entered": ["flow_version_id", "entered_at", "id"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "journeys", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="journeys")
