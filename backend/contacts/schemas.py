"""Input shapes for identify/track, shared by the public API, forms, CSV import and webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from backend.validation import DB_INT_MAX, within_date_range

MAX_PROPERTIES_BYTES = 32_000


def _date_time_text(value: Any) -> Any:
    # Lax parsing would read a number as a Unix time and a bare date as midnight;
    # the API documents an ISO 8601 date-time, so that is what it takes.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or "T" not in value.upper():
        raise ValueError("give an ISO 8601 date-time, like 2026-03-02T09:00:00+01:00")
    return value


DateTime = Annotated[datetime, BeforeValidator(_date_time_text), AfterValidator(within_date_range)]


class IdentifyIn(BaseModel):
    """Create or update a contact, found by ``external_id`` first, then ``email``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_id: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    attributes: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] | None = Field(default=None, max_length=100)
    lifecycle_stage: str | None = Field(default=None, max_length=40)
    timezone: str | None = Field(default=None, max_length=64)
    consent: dict[str, bool] = Field(
        default_factory=dict,
        description="Consent per channel (email, sms, web): true grants, false withdraws.",
    )

    @model_validator(mode="after")
    def _needs_an_identifier(self) -> IdentifyIn:
        if not (self.external_id or self.email):
            raise ValueError("give an email or an external_id to identify the contact")
        return self


class TrackIn(BaseModel):
    """Append an event for a contact (by id, external id or email) or an anonymous visitor."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    type: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    contact_id: int | None = Field(default=None, ge=1, le=DB_INT_MAX)
    external_id: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    visitor_id: str | None = Field(default=None, max_length=64)
    properties: dict[str, Any] = Field(default_factory=dict)
    occurred_at: DateTime | None = None
    idempotency_key: str | None = Field(
        default=None,
        max_length=200,
        description="Send the same key again and the event is stored only once.",
    )

    @model_validator(mode="after")
    def _needs_a_customer(self) -> TrackIn:
        if not (self.contact_id or self.external_id or self.email or self.visitor_id):
            raise ValueError("say whose event it is: contact_id, external_id, email or visitor_id")
        return self
