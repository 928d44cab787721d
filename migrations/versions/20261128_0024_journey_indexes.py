"""journey indexes: fewer index entries written per journey update

Revision ID: 0024_journey_indexes
Revises: 0023_journey_leases
Create Date: 2026-11-28 05:30:00

Every cursor move updates indexed columns, so the update is never heap-only and
writes one entry into every index whose predicate the new row meets. Three of
them are folded into two that serve the same queries:

- ``ix_journeys_contact_id`` (contact_id) and ``ix_journeys_flow_contact``
  (flow_id, contact_id, status) become ``ix_journeys_contact_flow`` (contact_id,
  flow_id, status): "an earlier journey of this customer in this flow?" gives
  both columns, the contact's page, privacy and the live check give contact_id.
- ``ix_journeys_flow_visitor`` becomes ``ix_journeys_visitor_flow`` (visitor_id,
  flow_id, status), partial on visitor_id being set: a contact's journey writes
  no entry in it, and the visitor lookups that filtered on visitor_id alone
  (live check at ingest, privacy, deleting a visitor) now have an index.
- Per-flow counts (flows list) read flow_id and status: on PostgreSQL
  ``ix_journeys_flow_entered`` carries status as an included column, so they stay
  an index-only scan without a key of their own.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0024_journey_indexes'
down_revision: str | None = '0023_journey_leases'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_VISITOR_SET = sa.text('visitor_id IS NOT NULL')


def upgrade() -> None:
    with op.batch_alter_table('journeys', schema=None) as batch_op:
        batch_op.drop_index('ix_journeys_contact_id')
        batch_op.drop_index('ix_journeys_flow_contact')
        batch_op.drop_index('ix_journeys_flow_visitor')
        batch_op.drop_index('ix_journeys_flow_entered')
        batch_op.create_index(
            'ix_journeys_contact_flow', ['contact_id', 'flow_id', 'status'], unique=False
        )
        batch_op.create_index(
            'ix_journeys_visitor_flow',
            ['visitor_id', 'flow_id', 'status'],
            unique=False,
            postgresql_where=_VISITOR_SET,
            sqlite_where=_VISITOR_SET,
        )
        batch_op.create_index(
            'ix_journeys_flow_entered',
            ['flow_id', 'entered_at', 'id'],
            unique=False,
            postgresql_include=['status'],
        )


def downgrade() -> None:
    with op.batch_alter_table('journeys', schema=None) as batch_op:
        batch_op.drop_index('ix_journeys_flow_entered')
        batch_op.drop_index('ix_journeys_visitor_flow')
        batch_op.drop_index('ix_journeys_contact_flow')
        batch_op.create_index(
            'ix_journeys_flow_entered', ['flow_id', 'entered_at', 'id'], unique=False
        )
        batch_op.create_index(
            'ix_journeys_flow_visitor', ['flow_id', 'visitor_id', 'status'], unique=False
        )
        batch_op.create_index(
            'ix_journeys_flow_contact', ['flow_id', 'contact_id', 'status'], unique=False
        )
        batch_op.create_index('ix_journeys_contact_id', ['contact_id'], unique=False)
