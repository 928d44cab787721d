"""What a node read while it ran: the profile fields and events, kept for the run history.

An auditor asks "why did this customer get that email": the step row answers
with what the node actually looked at. ``transition`` hands the node watched
stand-ins for ``ctx.profile`` and ``ctx.events`` that note each field and event
read; the note is bounded (a few dozen fields, the newest events, short
values) so a node that reads everything cannot bloat the history.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, SupportsIndex, overload

from nodes.sdk.types import EventRecord, Profile

__all__ = ["MAX_EVENTS", "MAX_FIELDS", "MAX_TEXT", "Reads"]

MAX_FIELDS = 30
MAX_EVENTS = 10
MAX_TEXT = 200

# Profile fields worth noting; ``kind`` and ``id`` name the customer, they are not a reading.
_FIELDS = frozenset(
    {
        "email",
        "phone",
        "first_name",
        "last_name",
        "tags",
        "lifecycle_stage",
        "timezone",
        "consent",
        "owner_id",
    }
)


def _small(value: Any) -> Any:
    """``value`` as short JSON: long text cut, containers summarised to their first items."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "…"
    if isinstance(value, Mapping):
        return {str(k): _small(v) for k, v in list(value.items())[:MAX_FIELDS]}
    if isinstance(value, list | tuple | set | frozenset):
        return [_small(v) for v in list(value)[:MAX_FIELDS]]
    return _small(str(value))


class Reads:
    """The fields and events one node run read; ``as_json`` is what the step row keeps."""

    __slots__ = ("events", "events_read", "fields")

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self.events: dict[int, EventRecord] = {}
        self.events_read = 0

    def field(self, name: str, value: Any) -> None:
        if name not in self.fields and len(self.fields) < MAX_FIELDS:
            self.fields[name] = _small(value)

    def event(self, position: int, event: EventRecord) -> None:
        if position in self.events:
            return
        self.events_read += 1
        self.events[position] = event
        if len(self.events) > MAX_EVENTS:
            # Events come oldest first; the newest ones are the telling ones.
            del self.events[min(self.events)]

    def watch(self, profile: Profile, events: tuple[EventRecord, ...]) -> tuple[Profile, Events]:
        """Stand-ins for ``profile`` and ``events`` that report every read here."""
        # A copy of the instance's fields, not a call to the dataclass's __init__:
        # this runs for every step, and the fields were validated when ``profile`` was made.
        watched = object.__new__(_WatchedProfile)
        fields = object.__getattribute__(watched, "__dict__")
        fields.update(vars(profile))
        fields["_reads"] = self
        # No events, nothing to note: most nodes get the one shared empty stand-in.
        return watched, (Events(events, self) if events else _NO_EVENTS)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.fields:
            out["profile"] = self.fields
        if self.events:
            out["events"] = [
                {
                    "id": e.id,
                    "type": e.type,
                    "at": e.occurred_at.isoformat(),
                }
                for _position, e in sorted(self.events.items())
            ]
            out["events_read"] = self.events_read
        return out


class _WatchedAttributes(Mapping[str, Any]):
    def __init__(self, inner: Mapping[str, Any], reads: Reads) -> None:
        self._inner = inner
        self._reads = reads

    def __getitem__(self, key: str) -> Any:
        value = self._inner[key]
        self._reads.field(f"attributes.{key}", value)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._inner)

    def __len__(self) -> int:
        return len(self._inner)

    def __contains__(self, key: object) -> bool:
        found = key in self._inner
        if isinstance(key, str):
            self._reads.field(f"attributes.{key}", self._inner.get(key))
        return found


class _WatchedProfile(Profile):
    """The profile a node sees: reading a field notes it (copies made by ``replace`` do not)."""

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if name in _FIELDS or name == "attributes":
            try:
                reads: Reads = object.__getattribute__(self, "_reads")
            except AttributeError:
                return value
            if name == "attributes":
                return _WatchedAttributes(value, reads)
            reads.field(name, value)
        return value


class Events(tuple[EventRecord, ...]):
    """The customer's events as a tuple; iterating or indexing notes the events read."""

    _reads: Reads

    def __new__(cls, events: tuple[EventRecord, ...], reads: Reads) -> Events:
        made = super().__new__(cls, events)
        made._reads = reads
        return made

    def __iter__(self) -> Iterator[EventRecord]:
        for position, event in enumerate(super().__iter__()):
            self._reads.event(position, event)
            yield event

    @overload
    def __getitem__(self, index: SupportsIndex) -> EventRecord: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[EventRecord, ...]: ...

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        if isinstance(index, slice):
            positions = range(len(self))[index]
            return tuple(self[p] for p in positions)
        position = range(len(self))[index]
        event = super().__getitem__(position)
        self._reads.event(position, event)
        return event


# An empty ``Events`` can never note a read (nothing to iterate, every index out of range).
_NO_EVENTS = Events((), Reads())
