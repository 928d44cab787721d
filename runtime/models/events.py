"""Events: the append-only facts that trigger flows and wake waiting journeys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from runtime.models.base import Base, BigId, Json, UTCDateTime, utcnow

_ENGAGEMENT_SQL = text(
    "type IN ('email.opened', 'email.clicked', 'email.bounced', 'email.unsubscribed', "
    "'sms.unsubscribed', 'sms.delivered')"
)


class Event(Base):
    """Something a customer did or that happened to them. Rows are never updated.

    ``dedupe_key`` makes ingestion idempotent: the same event delivered twice
    (a retried webhook, a double-clicked form) is stored once.
    """

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_contact_id_occurred_at", "contact_id", "occurred_at"),
        Index("ix_events_visitor_id_occurred_at", "visitor_id", "occurred_at"),
        Index("ix_events_type_occurred_at", "type", "occurred_at"),
        # The results fold reads only what became of messages (runtime.results.ENGAGEMENT).
        Index(
            "ix_events_engagement",
            "id",
            postgresql_where=_ENGAGEMENT_SQL,
            sqlite_where=_ENGAGEMENT_SQL,
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    visitor_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("visitors.id", ondelete="CASCADE")
    )
    properties: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    source: Mapped[str] = mapped_column(String(100), default="api")
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A browser's word, not yet proven (a form typed with a known contact's address):
    # flows still react, but it is not the contact's history until verified.
    claimed: Mapped[bool] = mapped_column(Boolean, default=False)
