"""journey leases: a claim writes a narrow lease row, not the journey

Revision ID: 0023_journey_leases
Revises: 0022_routing
Create Date: 2026-11-27 20:40:00

The journey row's own ``lease_owner``/``lease_until`` columns stay: code that
takes a journey over still clears them, and a value set there still counts as
a lease (see ``runtime.models.journeys.Journey``). Leases in flight during the
upgrade are lost, so their journeys are due again at once: stop the workers
first, as for every migration.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.models.base

revision: str = '0023_journey_leases'
down_revision: str | None = '0022_routing'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('journey_leases',
    sa.Column('journey_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('until', backend.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['journey_id'], ['journeys.id'], name=op.f('fk_journey_leases_journey_id_journeys'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('journey_id', name=op.f('pk_journey_leases'))
    )


def downgrade() -> None:
    op.drop_table('journey_leases')
