"""Customers: known contacts, their consent history, and anonymous visitors."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from runtime.models.base import Base, BigId, Json, UTCDateTime, utcnow


class Channel(StrEnum):
    email = "email"
    sms = "sms"
    web = "web"


class Contact(Base):
    """A known customer. ``attributes`` holds typed custom fields (age, city, interest...)."""

    __tablename__ = "contacts"
    __table_args__ = (
        Index("ix_contacts_owner_id", "owner_id"),
        Index("ix_contacts_lifecycle_stage", "lifecycle_stage"),
        Index("ix_contacts_phone", "phone"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    first_name: Mapped[str] = mapped_column(String(200), default="")
    last_name: Mapped[str] = mapped_column(String(200), default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    tags: Mapped[list[str]] = mapped_column(Json, default=list)
    lifecycle_stage: Mapped[str] = mapped_column(String(40), default="subscriber")
    timezone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(16))
    # Current consent per channel: {"email": {"granted": true, "at": "...", "source": "..."}}.
    # The full history is in contact_consents; this copy is what every send checks.
    consent: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ContactConsent(Base):
    """One consent decision: granted or withdrawn, for a channel, with when and where from."""

    __tablename__ = "contact_consents"
    __table_args__ = (Index("ix_contact_consents_contact_id_at", "contact_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Visitor(Base):
    """An anonymous website visitor, identified by the snippet's first-party id.

    When the visitor becomes known (form, identify call) ``contact_id`` links
    them to the contact; their events and journeys move over (identity stitching).
    """

    __tablename__ = "visitors"
    __table_args__ = (Index("ix_visitors_contact_id", "contact_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_key_id: Mapped[int | None] = mapped_column(ForeignKey("site_keys.id", ondelete="SET NULL"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    traits: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    stitched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The browser's own claim (identify, a form): shows and records nothing of that
    # contact until verified, when ``contact_id`` is set and the history moves over.
    claimed_contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL")
    )
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when the contact it was linked to was erased: this id is never used again.
    forgotten_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
