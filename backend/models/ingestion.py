"""Where customer data comes from: attribute schema, forms, CSV imports, inbound webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from backend.models.base import Base, BigId, Json, UTCDateTime, utcnow


class AttributeDefinition(Base):
    """The declared type of a custom contact attribute (string, number, boolean, date).

    An attribute is declared when first seen (typed from its value) or by an
    admin; from then on values of another type are refused per item.
    """

    __tablename__ = "attribute_definitions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(20))
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Form(Base):
    """A signup or contact form with an embeddable snippet and a hosted page."""

    __tablename__ = "forms"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    # [{"name", "label", "type": text|email|tel|number|date|checkbox|select, "required",
    #   "attribute": contact field or attribute key, "options": [...]}]
    fields: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    consent_label: Mapped[str] = mapped_column(Text, default="")
    consent_channel: Mapped[str | None] = mapped_column(String(20))
    success_message: Mapped[str] = mapped_column(Text, default="")
    redirect_url: Mapped[str | None] = mapped_column(String(500))
    double_opt_in: Mapped[bool] = mapped_column(Boolean, default=False)
    # Who owns the contacts this form creates, so their follow-up tasks reach someone.
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ImportJob(Base):
    """A CSV import running in the background, with progress and a rejected-rows report."""

    __tablename__ = "import_jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    filename: Mapped[str] = mapped_column(String(300))
    path: Mapped[str] = mapped_column(String(500))
    mapping: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    mode: Mapped[str] = mapped_column(String(20), default="upsert")  # create, update, upsert
    status: Mapped[str] = mapped_column(String(20), default="queued")
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_count: Mapped[int] = mapped_column(Integer, default=0)
    skipped_count: Mapped[int] = mapped_column(Integer, default=0)
    rejected_count: Mapped[int] = mapped_column(Integer, default=0)
    # [{"row": n, "reason": "..."}], capped; the full report is the downloadable CSV.
    rejected: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InboundSource(Base):
    """A per-source webhook URL (CRM, shop) whose JSON posts become events."""

    __tablename__ = "inbound_sources"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token: Mapped[str] = mapped_column(String(64), unique=True)
    secret: Mapped[str] = mapped_column(String(128))
    # How to read the payload: {"event_type": "order.paid" or "$.type" path,
    #  "email": "$.customer.email", "external_id": "$.customer.id", "properties": "$.data"}
    mapping: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
