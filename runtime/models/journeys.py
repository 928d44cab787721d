"""Journeys (one customer's pass through one flow version) and their steps (run history)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column

from runtime.models.base import Base, BigId, Json, UTCDateTime, utcnow


class JourneyStatus(StrEnum):
    active = "active"  # due to run its cursor node
    waiting = "waiting"  # parked on a timer and/or an event
    completed = "completed"  # reached the end or a goal
    exited = "exited"  # left by an exit rule (unsubscribed, left audience, flow archived)
    failed = "failed"  # a node kept failing; kept for the run history, admin may retry
    cancelled = "cancelled"  # cancelled by an admin


LIVE_STATUSES = (JourneyStatus.active.value, JourneyStatus.waiting.value)
_LIVE_SQL = text("status IN ('active', 'waiting')")
_WAITING_SQL = text("wait_event_type IS NOT NULL")
_WOKEN_SQL = text("wake_event_id IS NOT NULL")
_VISITOR_SQL = text("visitor_id IS NOT NULL")
# Steps the results fold has yet to count: new ones, and counted waits that have since finished.
_UNCOUNTED_STEPS_SQL = text("counted IS NULL OR (counted = 1 AND status <> 'waiting')")


class JourneyLease(Base):
    """A worker's claim on a journey: who holds it and until when (``runtime.claims``).

    Kept apart from ``journeys`` so that a claim writes this narrow row and the
    journey row is written once per claim, with the walk's result. A row lives
    from the claim to the result write (or, for a dead worker, until the next
    claim replaces it after ``until``); anything that takes a journey over
    deletes it, which is how a late result learns it lost the journey.
    """

    __tablename__ = "journey_leases"

    journey_id: Mapped[int] = mapped_column(
        ForeignKey("journeys.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    owner: Mapped[str] = mapped_column(String(64))
    until: Mapped[datetime] = mapped_column(UTCDateTime)


def _claimed(column: Any, physical: Any) -> ColumnElement[Any]:
    """The journey's row value if set (a lease written there directly), else its claim's."""
    claim = (
        select(column)
        .where(JourneyLease.journey_id == Journey.id)
        .correlate(Journey)
        .scalar_subquery()
    )
    return func.coalesce(physical, claim)


class Journey(Base):
    """Cursor, status and wait state of one customer in one flow version.

    A journey is *due* when ``due_at`` is set and in the past; workers claim due
    journeys by taking a lease (a ``journey_leases`` row), so a crashed worker's
    claims simply expire and are picked up again. ``lease_owner``/``lease_until``
    read the claim's lease; the same-named columns on this table are only ever
    written by code that clears a lease (or a test that sets one by hand), and
    a value there counts as a lease too.

    ``entry_key`` ("<flow id>:c:<contact id>" or "<flow id>:v:<visitor id>") is
    unique while the journey is live and cleared when it ends: the database, not
    a read-then-write check, makes sure a customer is in a flow at most once at a
    time, even with two workers ingesting the same event.
    """

    __tablename__ = "journeys"
    __table_args__ = (
        # Hot path 1: the claim query looks for due, unleased journeys.
        Index(
            "ix_journeys_due",
            "due_at",
            postgresql_where=_LIVE_SQL,
            sqlite_where=_LIVE_SQL,
        ),
        # Hot path 2: an ingested event finds the journeys waiting for its type.
        Index(
            "ix_journeys_wait_contact",
            "wait_event_type",
            "contact_id",
            postgresql_where=_WAITING_SQL,
            sqlite_where=_WAITING_SQL,
        ),
        Index(
            "ix_journeys_wait_visitor",
            "wait_event_type",
            "visitor_id",
            postgresql_where=_WAITING_SQL,
            sqlite_where=_WAITING_SQL,
        ),
        # Re-entry policy checks ("an earlier journey of this customer in this flow?") and
        # every lookup by customer alone (live check at ingest, contact page, privacy,
        # deleting a contact or visitor). Customer first, so one index serves both; the
        # visitor one is partial: a contact's journey, the common case, writes no entry
        # there. Each index is one more entry written per cursor move (migration 0024).
        Index("ix_journeys_contact_flow", "contact_id", "flow_id", "status"),
        Index(
            "ix_journeys_visitor_flow",
            "visitor_id",
            "flow_id",
            "status",
            postgresql_where=_VISITOR_SQL,
            sqlite_where=_VISITOR_SQL,
        ),
        # Retention keeps a live journey's wake event, and deleting an event nulls the
        # references to it: both look journeys up by this column.
        Index(
            "ix_journeys_wake_event",
            "wake_event_id",
            postgresql_where=_WOKEN_SQL,
            sqlite_where=_WOKEN_SQL,
        ),
        # The Runs list pages newest entries first by keyset (entered_at, id), alone or
        # within one status, flow or flow version: each filter walks its own index.
        Index("ix_journeys_entered", "entered_at", "id"),
        Index("ix_journeys_status_entered", "status", "entered_at", "id"),
        # Within one flow; status rides along (PostgreSQL) so the per-flow counts of the
        # flows list stay an index-only scan without an index of their own.
        Index(
            "ix_journeys_flow_entered", "flow_id", "entered_at", "id", postgresql_include=["status"]
        ),
        Index("ix_journeys_version_entered", "flow_version_id", "entered_at", "id"),
        # The results overlay's "waiting there now", per version and node.
        Index(
            "ix_journeys_version_node_live",
            "flow_version_id",
            "node_id",
            postgresql_where=_LIVE_SQL,
            sqlite_where=_LIVE_SQL,
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"))
    flow_version_id: Mapped[int] = mapped_column(ForeignKey("flow_versions.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    visitor_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("visitors.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(20), default=JourneyStatus.active.value)
    node_id: Mapped[str] = mapped_column(String(64))
    # How many times each node has been entered: {"node_id": n}. Gives the step key's visit.
    visits: Mapped[dict[str, int]] = mapped_column(Json, default=dict)
    # Flow data carried between nodes (trigger event properties, split branch, ...).
    data: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    wait_event_type: Mapped[str | None] = mapped_column(String(100))
    wait_match: Mapped[dict[str, Any] | None] = mapped_column(Json)
    waiting_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The event that ended the wait; the stepper hands it to the node as ``ctx.wake``.
    wake_event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"))
    entry_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    row_lease_owner: Mapped[str | None] = mapped_column("lease_owner", String(64))
    row_lease_until: Mapped[datetime | None] = mapped_column("lease_until", UTCDateTime)
    exit_reason: Mapped[str | None] = mapped_column(String(100))
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # In queries: the row's lease, else the claim's. Written (ORM UPDATE, constructor) and read
    # on a loaded instance: the row's only (an instance cannot query), so ask with a query.
    @hybrid_property
    def lease_owner(self) -> str | None:
        return self.row_lease_owner

    @lease_owner.inplace.setter
    def _lease_owner_set(self, value: str | None) -> None:
        self.row_lease_owner = value

    @lease_owner.inplace.expression
    @classmethod
    def _lease_owner_expr(cls) -> ColumnElement[str | None]:
        return _claimed(JourneyLease.owner, cls.row_lease_owner)

    @lease_owner.inplace.update_expression
    @classmethod
    def _lease_owner_update(cls, value: Any) -> list[tuple[Any, Any]]:
        return [(cls.row_lease_owner, value)]

    @hybrid_property
    def lease_until(self) -> datetime | None:
        return self.row_lease_until

    @lease_until.inplace.setter
    def _lease_until_set(self, value: datetime | None) -> None:
        self.row_lease_until = value

    @lease_until.inplace.expression
    @classmethod
    def _lease_until_expr(cls) -> ColumnElement[datetime | None]:
        return _claimed(JourneyLease.until, cls.row_lease_until)

    @lease_until.inplace.update_expression
    @classmethod
    def _lease_until_update(cls, value: Any) -> list[tuple[Any, Any]]:
        return [(cls.row_lease_until, value)]


class StepStatus(StrEnum):
    done = "done"  # the node chose an output port
    waiting = "waiting"  # the node parked the journey; completed later by the same row
    ended = "ended"  # the node ended the journey (goal, exit, last node)
    error = "error"  # the node raised; retried up to the limit


class Step(Base):
    """One node executed for one journey: the run history admins audit.

    ``(journey_id, node_id, visit)`` is unique, so a retried or duplicated job
    can never run the same step twice (DESIGN principle 3).
    """

    __tablename__ = "steps"
    __table_args__ = (
        UniqueConstraint("journey_id", "node_id", "visit"),
        Index("ix_steps_node_started", "node_id", "started_at"),
        Index(
            "ix_steps_uncounted",
            "id",
            postgresql_where=_UNCOUNTED_STEPS_SQL,
            sqlite_where=_UNCOUNTED_STEPS_SQL,
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(64))
    visit: Mapped[int] = mapped_column(Integer)
    node_type: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    port: Mapped[str | None] = mapped_column(String(64))
    input: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    output: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_ms: Mapped[float | None] = mapped_column()
    # What the results rollup has counted of this row: NULL nothing yet, 1 that it
    # was reached (it was still waiting or retrying), 2 everything. See runtime.results.
    counted: Mapped[int | None] = mapped_column(SmallInteger)
