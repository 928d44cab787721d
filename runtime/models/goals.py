"""Conversions: the journeys that reached their flow's goal, once each."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from runtime.models.base import Base, BigId, UTCDateTime


class JourneyConversion(Base):
    """One journey's conversion: which goal it met and when.

    The journey is the key, so a customer converts at most once per pass
    through a flow whichever goal they meet first, and recording it again
    (a retried step, the next sweep) changes nothing.
    """

    __tablename__ = "conversions"
    __table_args__ = (Index("ix_conversions_flow_id_converted_at", "flow_id", "converted_at"),)

    journey_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("journeys.id", ondelete="CASCADE"), primary_key=True
    )
    flow_id: Mapped[int] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"))
    # The goal node's id, or "flow" for the flow's own goal (runtime.goals.FLOW_GOAL).
    goal: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(80))
    converted_at: Mapped[datetime] = mapped_column(UTCDateTime)
