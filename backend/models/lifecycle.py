"""Lifecycle planning: phases, their processes, touchpoints on a process's timeline, links to flows.

There is one workspace per installation, so phases and the priority horizons
are global rows. Phases and processes are retired, never deleted: a touchpoint
or flow that points at one keeps its place in the plan.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.models.base import Base, BigId, Json, UTCDateTime, utcnow


class TouchpointCategory(StrEnum):
    today = "today"  # communication that happens today
    company = "company"  # communication in the company's interest
    customer = "customer"  # communication in the customer's interest


class TouchpointStatus(StrEnum):
    idea = "idea"
    planned = "planned"
    production = "production"  # content in production
    automated = "automated"
    manual = "manual"
    retired = "retired"


class LifecyclePhaseRow(Base):
    """A phase of the customer lifecycle; ``flow_phase`` is the flows' coarse phase it maps to."""

    __tablename__ = "lifecycle_phases"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    flow_phase: Mapped[str] = mapped_column(String(20))
    position: Mapped[int] = mapped_column(Integer, default=0)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LifecycleProcess(Base):
    """A process inside a phase ("conversion from the web" inside Attract & convert)."""

    __tablename__ = "lifecycle_processes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    phase_id: Mapped[int] = mapped_column(ForeignKey("lifecycle_phases.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    position: Mapped[int] = mapped_column(Integer, default=0)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Touchpoint(Base):
    """A sticky note on a process's timeline.

    ``revision`` increases with every saved change; an edit names the revision it
    was made on, so two people editing the same card never silently overwrite.
    ``answers_id`` says which customer-interest touchpoint a company touchpoint
    meets: the gap analysis is built on it.
    """

    __tablename__ = "lifecycle_touchpoints"
    __table_args__ = (Index("ix_lifecycle_touchpoints_process", "process_id", "position"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    process_id: Mapped[int] = mapped_column(
        ForeignKey("lifecycle_processes.id", ondelete="CASCADE")
    )
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(20))
    channels: Mapped[list[str]] = mapped_column(Json, default=list)
    audience_text: Mapped[str] = mapped_column(String(300), default="")
    audience_rule: Mapped[dict[str, Any] | None] = mapped_column(Json)
    owner: Mapped[str] = mapped_column(String(120), default="")
    priority: Mapped[int] = mapped_column(Integer, default=2)
    status: Mapped[str] = mapped_column(String(20), default=TouchpointStatus.idea.value)
    decision: Mapped[str] = mapped_column(Text, default="")
    prioritised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    position: Mapped[int] = mapped_column(Integer, default=0)
    answers_id: Mapped[int | None] = mapped_column(
        ForeignKey("lifecycle_touchpoints.id", ondelete="SET NULL")
    )
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TouchpointLink(Base):
    """A touchpoint carried out by a flow, or by one node of it (``node_id`` empty: the flow)."""

    __tablename__ = "lifecycle_touchpoint_links"
    __table_args__ = (UniqueConstraint("touchpoint_id", "flow_id", "node_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    touchpoint_id: Mapped[int] = mapped_column(
        ForeignKey("lifecycle_touchpoints.id", ondelete="CASCADE")
    )
    flow_id: Mapped[int] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(64), default="")


class LifecycleSettings(Base):
    """The workspace's priority horizons in months (one row, id 1)."""

    __tablename__ = "lifecycle_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    horizon_1_months: Mapped[int] = mapped_column(Integer, default=6)
    horizon_2_months: Mapped[int] = mapped_column(Integer, default=12)
    horizon_3_months: Mapped[int] = mapped_column(Integer, default=24)
