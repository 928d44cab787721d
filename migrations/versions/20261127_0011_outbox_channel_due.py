"""outbox: due messages by channel, for claims sized per channel

Revision ID: 0011_outbox_channel_due
Revises: 0006_marketer
Create Date: 2026-11-27 15:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011_outbox_channel_due'
down_revision: str | None = '0006_marketer'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        'ix_outbox_messages_channel_due',
        'outbox_messages',
        ['channel', 'next_attempt_at'],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'deferred')"),
        sqlite_where=sa.text("status IN ('pending', 'deferred')"),
    )


def downgrade() -> None:
    op.drop_index(
        'ix_outbox_messages_channel_due',
        table_name='outbox_messages',
        postgresql_where=sa.text("status IN ('pending', 'deferred')"),
        sqlite_where=sa.text("status IN ('pending', 'deferred')"),
    )
