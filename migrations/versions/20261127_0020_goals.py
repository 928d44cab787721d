"""goals: conversions, one per journey that reached its flow's goal

Revision ID: 0020_goals
Revises: 0019_results
Create Date: 2026-11-27 18:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import backend.models.base

revision: str = '0020_goals'
down_revision: str | None = '0019_results'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conversions",
        sa.Column("journey_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("flow_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("goal", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=80), nullable=False),
        sa.Column("converted_at", backend.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_id"], ["flows.id"], name=op.f("fk_conversions_flow_id_flows"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["journey_id"],
            ["journeys.id"],
            name=op.f("fk_conversions_journey_id_journeys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("journey_id", name=op.f("pk_conversions")),
    )
    op.create_index(
        "ix_conversions_flow_id_converted_at", "conversions", ["flow_id", "converted_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_conversions_flow_id_converted_at", table_name="conversions")
    op.drop_table("conversions")
