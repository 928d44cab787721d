"""security: per-user session version, node type origins of published versions

Revision ID: 0013_security
Revises: 0011_outbox_channel_due
Create Date: 2026-11-27 15:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0013_security'
down_revision: str | None = '0011_outbox_channel_due'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(
            sa.Column('session_version', sa.Integer(), server_default='0', nullable=False)
        )
    with op.batch_alter_table('flow_versions') as batch:
        batch.add_column(
            sa.Column(
                'node_origins',
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table('flow_versions') as batch:
        batch.drop_column('node_origins')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('session_version')
