"""Typed payloads of the built-in channels: what a node's ``Message`` carries and a deliverer reads.

A node may build one and send its ``dump()``::

    Message("sms", SmsPayload(to=profile.phone, text="Hej!").dump())

Deliverers read every payload through the same model, so a payload a node got
wrong fails once, permanently, with pydantic's account of what is wrong, not
with a ``KeyError`` retried for an hour. Keys a model does not name are kept
(delivery options such as ``when_blocked``, tracking details).
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EmailPayload", "Payload", "SmsPayload", "TaskPayload", "WebhookPayload"]


class Payload(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    def dump(self) -> dict[str, Any]:
        """The JSON-ready dict a ``Message`` carries (``from`` spelled as on the wire)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    @classmethod
    def read(cls, payload: Any) -> Self:
        """The payload of an outbox message, checked (raises pydantic's ``ValidationError``)."""
        return cls.model_validate(dict(payload or {}))


class EmailPayload(Payload):
    """``email``: the recipient (``Name <address>`` or an address), subject and body."""

    to: str = ""
    subject: str = ""
    text: str = ""
    html: str | None = None
    sender: str | None = Field(default=None, alias="from")
    preheader: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    # False leaves links as written and adds no open pixel for this message.
    track: bool = True


class SmsPayload(Payload):
    """``sms``: a phone number (read as E.164, national numbers in ``SMS_DEFAULT_REGION``)."""

    to: str = ""
    text: str = ""
    sender: str | None = Field(default=None, alias="from")


class WebhookPayload(Payload):
    """``webhook``: POSTed as JSON (a string body as text), signed when ``secret`` is set."""

    url: str = ""
    body: Any = Field(default_factory=dict)
    secret: str | None = None


class TaskPayload(Payload):
    """``task``: a call-list task for the contact's salesperson."""

    title: str = ""
    owner_id: int | None = None
    contact_id: int | None = None
    note: str = ""
    due_at: str | None = None  # ISO 8601
    # Also email the salesperson (None: the deliverer's default, TASK_EMAIL_OWNER).
    email_owner: bool | None = None
