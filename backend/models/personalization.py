"""Web personalization: content blocks and variants, default rules, slot assignments.

A *slot* is a named place on the customer's site (``data-touchflow-slot="hero"``).
What a visitor sees in a slot is, in order: a live assignment for the visitor
or their contact (written by a flow's "show web content" action), else the
first enabled default rule that matches the page, UTM source and audience,
else the page's own default content.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.models.base import Base, BigId, UTCDateTime, utcnow


class Audience(StrEnum):
    """Who a default rule applies to."""

    anyone = "anyone"
    anonymous = "anonymous"  # visitors not (yet) linked to a contact
    known = "known"  # visitors stitched to a contact


class ContentBlock(Base):
    """A named piece of web content (a hero banner, an offer) with one or more variants."""

    __tablename__ = "content_blocks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # No personal data in it: a flow's assignment of it may show on an unverified claim.
    show_on_claim: Mapped[bool] = mapped_column(Boolean, default=False)


class ContentVariant(Base):
    """One version of a block's HTML. ``html`` is sanitised before it is stored."""

    __tablename__ = "content_variants"
    __table_args__ = (UniqueConstraint("block_id", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    block_id: Mapped[int] = mapped_column(ForeignKey("content_blocks.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    html: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ContentRule(Base):
    """Default content for a slot, without a flow: by page URL pattern, UTM source, audience.

    Rules are tried by ``priority`` (lowest first); the first that matches wins.
    Empty ``url_pattern``/``utm_source`` match any page / any source.
    """

    __tablename__ = "content_rules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slot: Mapped[str] = mapped_column(String(64))
    variant_id: Mapped[int] = mapped_column(ForeignKey("content_variants.id", ondelete="CASCADE"))
    priority: Mapped[int] = mapped_column(Integer, default=100)
    url_pattern: Mapped[str] = mapped_column(String(300), default="")
    utm_source: Mapped[str] = mapped_column(String(100), default="")
    audience: Mapped[str] = mapped_column(String(20), default=Audience.anyone.value)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SlotAssignment(Base):
    """Content a flow put in a slot for one visitor or contact, until ``expires_at``.

    Either a variant of a block or inline (sanitised) HTML. The newest live
    assignment of a slot wins. ``idempotency_key`` is the outbox message's,
    so a retried delivery does not add a second row.
    """

    __tablename__ = "slot_assignments"
    __table_args__ = (
        Index("ix_slot_assignments_visitor_id_slot", "visitor_id", "slot"),
        Index("ix_slot_assignments_contact_id_slot", "contact_id", "slot"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slot: Mapped[str] = mapped_column(String(64))
    visitor_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("visitors.id", ondelete="CASCADE")
    )
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    variant_id: Mapped[int | None] = mapped_column(
        ForeignKey("content_variants.id", ondelete="CASCADE")
    )
    html: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    journey_id: Mapped[int | None] = mapped_column(ForeignKey("journeys.id", ondelete="SET NULL"))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
