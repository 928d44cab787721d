"""Deliverers: the narrow protocol through which outbox messages leave, one per channel.

A deliverer receives one ``Outgoing`` message after the step that produced it
committed, and either returns ``Delivered`` or raises. ``PermanentError``
means retrying cannot help (a refused recipient, a 4xx from a webhook): the
message goes straight to the dead-letter state. Any other exception is
retried with exponential back-off until the attempt limit. ``HardBounce`` is a
permanent error that also puts the address on the suppression list.

A deliverer may say how many messages it takes at once (``concurrency``: an SMTP
pool's connections, an HTTP provider's requests in flight); the outbox never has
more than that many of the channel's messages in flight, so a slow provider
slows its channel down instead of piling messages up behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from nodes.sdk.payloads import Payload

__all__ = [
    "DEFAULT_CONCURRENCY",
    "Delivered",
    "Deliverer",
    "HardBounce",
    "LeaseLost",
    "Outgoing",
    "PermanentError",
    "Withheld",
    "concurrency_of",
    "read_payload",
]

# Messages in flight per channel for a deliverer that does not say.
DEFAULT_CONCURRENCY = 16


@dataclass(frozen=True)
class Outgoing:
    """An outbox message as a deliverer sees it."""

    id: int
    idempotency_key: str
    channel: str
    payload: Mapping[str, Any]
    category: str = "marketing"
    journey_id: int | None = None
    node_id: str | None = None
    contact_id: int | None = None
    attempts: int = 1
    extras: Mapping[str, Any] = field(default_factory=dict)
    # The claim this attempt belongs to: the send check refuses it when another sender holds it.
    lease_owner: str | None = None


@dataclass(frozen=True)
class Delivered:
    """Success, with the provider's id for the message when it gives one."""

    provider_message_id: str | None = None
    # What the provider answered (status, a body snippet) or, in development, the caught mail.
    detail: str | None = None


class PermanentError(Exception):
    """Delivery can never succeed; dead-letter the message without further retries."""


class HardBounce(PermanentError):
    """The address cannot receive messages at all: it goes on the suppression list."""

    def __init__(self, message: str, address: str) -> None:
        super().__init__(message)
        self.address = address


class Withheld(Exception):
    """The message was kept back on purpose and its row already says why (suppressed,
    deferred); the outbox leaves the row as the deliverer wrote it."""


class LeaseLost(Exception):
    """The message is no longer this sender's (its claim ran out and another sender took it
    over): it was not sent, and the outbox leaves the row to its new holder."""


class Deliverer(Protocol):
    async def deliver(self, message: Outgoing) -> Delivered:
        """Deliver one message; raise to fail (see the module docstring)."""
        ...


P = TypeVar("P", bound=Payload)


def read_payload(model: type[P], message: Outgoing) -> P:
    """``message``'s payload as its channel's typed model; a malformed one is permanent."""
    try:
        return model.read(message.payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise PermanentError(f"the {message.channel} message is malformed ({problems})") from exc


def concurrency_of(deliverer: object) -> int:
    """How many messages ``deliverer`` takes at once (``DEFAULT_CONCURRENCY`` unless it says)."""
    value = getattr(deliverer, "concurrency", None)
    return value if isinstance(value, int) and value > 0 else DEFAULT_CONCURRENCY
