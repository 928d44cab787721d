"""What one batch of ingested events is made of, shared by its two stages.

``runtime.events`` stores a batch's events (``EventIn``) and ``runtime.reactions``
lets flows react to the stored ones; an ``EventBatch`` carries the items and
what each stage found out about them to the ``IngestResult`` of each item.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nodes.sdk import EventRecord
from runtime.models import FlowStatus
from runtime.profiles import CustomerKey, customer_key
from runtime.sql import (
    FLOWS,
)

__all__ = ["ENROLLING", "EventBatch", "EventIn", "IngestResult", "matches"]


@dataclass(frozen=True)
class EventIn:
    """One event to store, for a contact or (when ``contact_id`` is None) a visitor."""

    type: str
    contact_id: int | None = None
    visitor_id: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    dedupe_key: str | None = None
    occurred_at: datetime | None = None
    source: str = "api"
    # Unverified (see ``runtime.models.Event.claimed``): kept with its visitor so a
    # later proof for that visitor can verify it.
    claimed: bool = False

    def __post_init__(self) -> None:
        if self.contact_id is None and self.visitor_id is None:
            raise ValueError("an event belongs to a contact or a visitor")

    @property
    def customer(self) -> CustomerKey:
        return customer_key(self.contact_id, self.visitor_id)


@dataclass(frozen=True)
class IngestResult:
    event_id: int
    duplicate: bool = False
    enrolled: tuple[int, ...] = ()
    woken: tuple[int, ...] = ()
    goals: tuple[int, ...] = ()


def matches(wait_match: Mapping[str, Any] | None, properties: Mapping[str, Any]) -> bool:
    """A wait's match is a subset of the event's properties (equal values, key by key)."""
    return all(properties.get(key, _MISSING) == value for key, value in (wait_match or {}).items())


_MISSING = object()
# Flows whose published version enrolls customers.
ENROLLING = (FLOWS.c.status == FlowStatus.active.value, FLOWS.c.published_version_id.is_not(None))


@dataclass
class EventBatch:
    items: Sequence[EventIn]
    now: datetime
    # Per item: its event id, and the item it repeats (own index when stored by it).
    event_ids: list[int] = field(default_factory=list)
    first_of: list[int] = field(default_factory=list)
    stored: list[int] = field(default_factory=list)  # indexes of items whose event is new
    enrolled: dict[int, list[int]] = field(default_factory=dict)
    woken: dict[int, list[int]] = field(default_factory=dict)
    goals: dict[int, list[int]] = field(default_factory=dict)
    enrolling: set[int] | None = None  # published versions of active flows, when known
    any_live: bool = True  # False: none of the customers had a live journey at the insert

    def record(self, index: int) -> EventRecord:
        item = self.items[index]
        return EventRecord(
            type=item.type,
            occurred_at=item.occurred_at or self.now,
            properties=dict(item.properties),
            id=self.event_ids[index],
            source=item.source,
        )

    def results(self) -> list[IngestResult]:
        stored = set(self.stored)
        return [
            IngestResult(event_id=self.event_ids[i], duplicate=True)
            if i not in stored
            else IngestResult(
                event_id=self.event_ids[i],
                enrolled=tuple(self.enrolled.get(i, ())),
                woken=tuple(self.woken.get(i, ())),
                goals=tuple(self.goals.get(i, ())),
            )
            for i in range(len(self.items))
        ]
