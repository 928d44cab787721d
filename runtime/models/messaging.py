"""Messaging records: the suppression list and the delivery ledger (issue 7)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from runtime.models.base import Base, BigId, UTCDateTime, utcnow


class SuppressionReason(StrEnum):
    unsubscribed = "unsubscribed"  # blocks marketing on the channel
    stop = "stop"  # an inbound STOP reply; blocks marketing SMS
    hard_bounce = "hard_bounce"  # the address does not exist; blocks everything
    complaint = "complaint"  # marked as spam; blocks marketing
    manual = "manual"  # added by an admin; blocks everything


class Suppression(Base):
    """An address that must not receive messages on a channel (see ``SuppressionReason``).

    Keyed by the normalised address rather than the contact, so an address
    stays suppressed when the contact is re-imported or merged.
    """

    __tablename__ = "suppressions"
    __table_args__ = (
        UniqueConstraint("channel", "address"),
        Index("ix_suppressions_contact_id", "contact_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(20))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeliveryState(StrEnum):
    sending = "sending"  # cleared by the gate and handed to the provider
    accepted = "accepted"  # the provider took it: never hand it over again
    failed = "failed"  # the last attempt failed (the outbox row decides what next)


class Delivery(Base):
    """The delivery ledger: one row per outbox message that was cleared for sending.

    It is written outside the outbox's batch transaction, right before and right
    after the provider call, so a worker that crashes after the provider accepted
    a message finds ``accepted`` on the retry and does not send it twice. Rows in
    ``sending``/``accepted`` also count against the frequency caps.
    """

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_contact_cleared", "contact_id", "cleared_at"),)

    outbox_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("outbox_messages.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20), default=DeliveryState.sending.value)
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    # The provider's answer (status and a body snippet), or the caught mail in development.
    detail: Mapped[str | None] = mapped_column(Text)
    cleared_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
