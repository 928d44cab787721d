"""runtime: tasks, entry keys, wake events, outbox leases

Adds the call-list ``tasks`` table; ``journeys.entry_key`` (unique while a
journey is live: race-safe re-entry) and ``journeys.wake_event_id`` (the event
that ended a wait); ``outbox_messages.lease_owner`` and an index to find
deliveries whose worker died.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:51:04.308066
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.models.base

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('tasks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('owner_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('due_at', backend.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('journey_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('node_id', sa.String(length=64), nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('created_at', backend.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', backend.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_tasks_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['journey_id'], ['journeys.id'], name=op.f('fk_tasks_journey_id_journeys'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_tasks_owner_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tasks')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_tasks_idempotency_key'))
    )
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index('ix_tasks_contact_id', ['contact_id'], unique=False)
        batch_op.create_index('ix_tasks_owner_status_due', ['owner_id', 'status', 'due_at'], unique=False)

    with op.batch_alter_table('journeys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('wake_event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.add_column(sa.Column('entry_key', sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_journeys_entry_key'), ['entry_key'])
        batch_op.create_foreign_key(batch_op.f('fk_journeys_wake_event_id_events'), 'events', ['wake_event_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_owner', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_outbox_messages_sending', ['lease_until'], unique=False, postgresql_where=sa.text("status = 'sending'"), sqlite_where=sa.text("status = 'sending'"))



def downgrade() -> None:
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_messages_sending', postgresql_where=sa.text("status = 'sending'"), sqlite_where=sa.text("status = 'sending'"))
        batch_op.drop_column('lease_owner')

    with op.batch_alter_table('journeys', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_journeys_wake_event_id_events'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_journeys_entry_key'), type_='unique')
        batch_op.drop_column('entry_key')
        batch_op.drop_column('wake_event_id')

    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_owner_status_due')
        batch_op.drop_index('ix_tasks_contact_id')

    op.drop_table('tasks')
