"""Flows and their immutable published versions (DESIGN principle 7)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from runtime.models.base import Base, BigId, Json, UTCDateTime, utcnow


class LifecyclePhase(StrEnum):
    attract = "attract"
    onboard = "onboard"
    engage = "engage"
    retain = "retain"
    exit = "exit"


class FlowStatus(StrEnum):
    draft = "draft"  # never published
    active = "active"  # published and enrolling
    paused = "paused"  # journeys hold where they are, nobody new enters
    archived = "archived"  # journeys exited, read-only


class Flow(Base):
    """A named automation. The editable graph is the draft; running journeys use versions.

    ``draft_revision`` increases with every saved edit, so two tabs editing the
    same draft detect each other instead of silently overwriting.
    """

    __tablename__ = "flows"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    phase: Mapped[str] = mapped_column(String(20), default=LifecyclePhase.attract.value)
    # The process of the lifecycle plan this flow carries out (backend/lifecycle).
    process_id: Mapped[int | None] = mapped_column(
        ForeignKey("lifecycle_processes.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(20), default=FlowStatus.draft.value)
    draft_graph: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    draft_revision: Mapped[int] = mapped_column(Integer, default=0)
    published_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("flow_versions.id", ondelete="SET NULL", use_alter=True)
    )
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Who takes the flow's tasks for contacts without an owner when no round-robin is set.
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class FlowVersion(Base):
    """A frozen, validated graph. Never updated after insert."""

    __tablename__ = "flow_versions"
    __table_args__ = (UniqueConstraint("flow_id", "number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    graph: Mapped[dict[str, Any]] = mapped_column(Json)
    note: Mapped[str] = mapped_column(Text, default="")
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # type_id -> {"distribution", "version"} of each node type when published, so a
    # type later offered by another package is not run in its place.
    node_origins: Mapped[dict[str, Any] | None] = mapped_column(Json)
