"""The results rollup: per flow version, node and day, how many customers did what.

Charts and the canvas overlay read only these rows, never the step history, so
they stay fast on a flow with millions of steps and keep their numbers after
old steps, messages and events are pruned. ``runtime.results`` folds new rows in.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from runtime.models.base import Base, BigId, UTCDateTime


class Metric(StrEnum):
    reached = "reached"  # a step of the node started (every visit counts)
    left = "left"  # the step finished; ``port`` says which way ("" when the journey ended there)
    failed = "failed"  # the node kept failing and the journey failed there
    sent = "sent"  # a message of the node went to the provider
    withheld = "withheld"  # a message of the node was not sent (suppressed, no consent, dead)
    delivered = "delivered"  # the provider reported delivery (SMS status callbacks)
    opened = "opened"
    clicked = "clicked"  # unique per message and link
    bounced = "bounced"
    unsubscribed = "unsubscribed"


class FlowResult(Base):
    """One counter: ``count`` customers did ``metric`` at ``node_id`` on ``day`` (UTC).

    Day is when the customer reached the node (the message was queued), so a
    date range picks a cohort and every later count (left, opened...) belongs to it.
    """

    __tablename__ = "flow_results"
    __table_args__ = (
        UniqueConstraint("flow_version_id", "node_id", "metric", "port", "day"),
        Index("ix_flow_results_flow_id_day", "flow_id", "day"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"))
    flow_version_id: Mapped[int] = mapped_column(ForeignKey("flow_versions.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(20))
    port: Mapped[str] = mapped_column(String(64), default="")
    day: Mapped[date] = mapped_column(Date)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class ResultsMark(Base):
    """An event already counted. Events are never updated, so the mark lives beside them;
    marks below the events floor (``ResultsFloor``) are dropped, as no fold looks there."""

    __tablename__ = "results_marks"

    event_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)


class ResultsFloor(Base):
    """How far back the fold looks for uncounted events.

    ``floor_id``: every event at or below it is counted. ``candidate_id`` is the
    highest id seen at ``candidate_at``; it becomes the floor once it is older
    than any transaction can stay open, so an event committed late is still found.
    """

    __tablename__ = "results_floor"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    floor_id: Mapped[int] = mapped_column(BigInteger, default=0)
    candidate_id: Mapped[int] = mapped_column(BigInteger, default=0)
    candidate_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
