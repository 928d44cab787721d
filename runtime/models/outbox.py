"""The outbox: every side effect waits here until it is delivered (DESIGN principle 4)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, SmallInteger, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from runtime.models.base import Base, BigId, Json, UTCDateTime, utcnow


class OutboxStatus(StrEnum):
    pending = "pending"  # waiting for delivery (or a retry) at next_attempt_at
    sending = "sending"  # leased by a deliverer
    sent = "sent"
    deferred = "deferred"  # held back by a frequency cap or sending window
    suppressed = "suppressed"  # not sent: unsubscribed, bounced, no consent, dropped by cap
    dead = "dead"  # gave up after retries; an admin can retry


_UNCOUNTED_SQL = text(
    "(counted IS NULL OR counted = 2) AND status IN ('sent', 'suppressed', 'dead')"
)


class OutboxMessage(Base):
    """A message (email, SMS, webhook, task...) produced by a step, delivered after commit.

    ``idempotency_key`` is derived from the step, so a re-run step cannot queue
    a second copy, and providers receive it so a retried delivery is not a second send.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index(
            "ix_outbox_messages_due",
            "next_attempt_at",
            postgresql_where=text("status IN ('pending', 'deferred')"),
            sqlite_where=text("status IN ('pending', 'deferred')"),
        ),
        # Claims take each channel's due messages apart (sized to the channel's concurrency).
        Index(
            "ix_outbox_messages_channel_due",
            "channel",
            "next_attempt_at",
            postgresql_where=text("status IN ('pending', 'deferred')"),
            sqlite_where=text("status IN ('pending', 'deferred')"),
        ),
        # The sweep finds deliveries whose worker died while sending.
        Index(
            "ix_outbox_messages_sending",
            "lease_until",
            postgresql_where=text("status = 'sending'"),
            sqlite_where=text("status = 'sending'"),
        ),
        Index("ix_outbox_messages_contact_created", "contact_id", "created_at"),
        Index("ix_outbox_messages_journey_node", "journey_id", "node_id"),
        # Messages whose outcome the results fold has yet to count.
        Index(
            "ix_outbox_messages_uncounted",
            "id",
            postgresql_where=_UNCOUNTED_SQL,
            sqlite_where=_UNCOUNTED_SQL,
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(20), default="marketing")
    journey_id: Mapped[int | None] = mapped_column(ForeignKey("journeys.id", ondelete="SET NULL"))
    node_id: Mapped[str | None] = mapped_column(String(64))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    payload: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    status: Mapped[str] = mapped_column(String(20), default=OutboxStatus.pending.value)
    status_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the results rollup has counted: 1 the outcome, 2 a click, 3 both (runtime.results).
    counted: Mapped[int | None] = mapped_column(SmallInteger)
