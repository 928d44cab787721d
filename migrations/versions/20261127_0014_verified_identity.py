"""web edge: visitor claims and forgetting, site keys that forbid browser contacts, claim-safe blocks

Revision ID: 0014_verified_identity
Revises: 0013_security
Create Date: 2026-11-27 15:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.models.base

revision: str = '0014_verified_identity'
down_revision: str | None = '0013_security'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('visitors', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('claimed_contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True)
        )
        batch_op.add_column(sa.Column('claimed_at', backend.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('forgotten_at', backend.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_visitors_claimed_contact_id_contacts'), 'contacts',
            ['claimed_contact_id'], ['id'], ondelete='SET NULL',
        )
    with op.batch_alter_table('site_keys', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('allow_browser_contacts', sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table('content_blocks', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('show_on_claim', sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table('content_blocks', schema=None) as batch_op:
        batch_op.drop_column('show_on_claim')
    with op.batch_alter_table('site_keys', schema=None) as batch_op:
        batch_op.drop_column('allow_browser_contacts')
    with op.batch_alter_table('visitors', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_visitors_claimed_contact_id_contacts'), type_='foreignkey')
        batch_op.drop_column('forgotten_at')
        batch_op.drop_column('claimed_at')
        batch_op.drop_column('claimed_contact_id')
