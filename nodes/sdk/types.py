"""Plain values exchanged between the runtime and node code: profile, events, outcome."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import Enum
from typing import Any, Literal


class Family(Enum):
    """Where a node type sits in the palette, and what role it plays in a flow."""

    trigger = "trigger"
    wait = "wait"
    condition = "condition"
    selection = "selection"
    split = "split"
    action = "action"
    goal = "goal"


@dataclass(frozen=True)
class Port:
    """A named output of a node. Edges leave from ports."""

    id: str
    label: str = ""


NEXT = Port("next", "Next")


@dataclass(frozen=True)
class Profile:
    """The customer a journey is about: a known contact or an anonymous visitor."""

    kind: Literal["contact", "visitor"]
    id: str
    email: str | None = None
    phone: str | None = None
    first_name: str = ""
    last_name: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    lifecycle_stage: str | None = None
    timezone: str | None = None
    consent: Mapping[str, Any] = field(default_factory=dict)
    owner_id: int | None = None

    @property
    def contact_id(self) -> int | None:
        return int(self.id) if self.kind == "contact" else None


@dataclass(frozen=True)
class EventRecord:
    """An event as node code sees it."""

    type: str
    occurred_at: datetime
    properties: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None
    source: str = "api"


@dataclass(frozen=True)
class JourneyInfo:
    id: int
    flow_id: int
    flow_version_id: int
    node_id: str
    visit: int
    entered_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Wake:
    """Why a waiting node runs again: its timer fired, or the event it waited for arrived."""

    reason: Literal["timer", "event"]
    event: EventRecord | None = None
    waited_since: datetime | None = None


@dataclass(frozen=True)
class EventWait:
    """Wait for an event of ``type`` whose properties equal every item of ``match``."""

    type: str
    match: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Wait:
    """Park the journey until ``until`` (a timer) and/or an event; at least one is set.

    When the wait ends, the runtime runs the same node again with ``ctx.wake``
    set, and the node picks the output port (for example "opened" or "timeout").
    """

    until: datetime | None = None
    event: EventWait | None = None

    def __post_init__(self) -> None:
        if self.until is None and self.event is None:
            raise ValueError("a wait needs a time, an event, or both")


@dataclass(frozen=True)
class Message:
    """A side effect for the outbox: an email, SMS, webhook call, call-list task...

    ``key`` distinguishes several messages from one step; the runtime derives the
    idempotency key from the step identity and this key.
    """

    channel: str
    payload: Mapping[str, Any]
    category: Literal["marketing", "transactional"] = "marketing"
    key: str = "0"


@dataclass(frozen=True)
class ContactChanges:
    """Changes to the customer's profile, written in the step's transaction."""

    set_attributes: Mapping[str, Any] = field(default_factory=dict)
    unset_attributes: tuple[str, ...] = ()
    add_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()
    lifecycle_stage: str | None = None

    def is_empty(self) -> bool:
        return not (
            self.set_attributes
            or self.unset_attributes
            or self.add_tags
            or self.remove_tags
            or self.lifecycle_stage
        )


@dataclass(frozen=True)
class Outcome:
    """What a node decided. Exactly one of: go to ``port``, ``wait``, or ``end``.

    Build one with the class methods: ``Outcome.go("yes")``,
    ``Outcome.park(Wait(...))``, ``Outcome.finish("goal reached")``.
    """

    port: str | None = None
    wait: Wait | None = None
    end: Literal["completed", "exited"] | None = None
    reason: str | None = None
    messages: tuple[Message, ...] = ()
    changes: ContactChanges | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        chosen = [self.port is not None, self.wait is not None, self.end is not None]
        if sum(chosen) != 1:
            raise ValueError("an outcome goes to a port, waits, or ends: exactly one of them")

    @classmethod
    def go(
        cls,
        port: str = "next",
        *,
        messages: tuple[Message, ...] = (),
        changes: ContactChanges | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Outcome:
        if port is None:
            raise ValueError("an outcome goes to a port, waits, or ends: exactly one of them")
        return _outcome(cls, port, None, None, None, messages, changes, data or {})

    @classmethod
    def park(cls, wait: Wait, *, messages: tuple[Message, ...] = ()) -> Outcome:
        if wait is None:
            raise ValueError("an outcome goes to a port, waits, or ends: exactly one of them")
        return _outcome(cls, None, wait, None, None, messages, None, {})

    @classmethod
    def finish(
        cls,
        reason: str,
        *,
        exited: bool = False,
        messages: tuple[Message, ...] = (),
        changes: ContactChanges | None = None,
    ) -> Outcome:
        end = "exited" if exited else "completed"
        return _outcome(cls, None, None, end, reason, messages, changes, {})


def _outcome(
    cls: type[Outcome],
    port: str | None,
    wait: Wait | None,
    end: str | None,
    reason: str | None,
    messages: tuple[Message, ...],
    changes: ContactChanges | None,
    data: Mapping[str, Any],
) -> Outcome:
    """What ``cls(...)`` makes, for the class methods that have already checked that exactly
    one of port, wait and end is set: every node run makes an outcome, and a frozen
    dataclass's ``__init__`` sets each of its seven fields through ``object.__setattr__``."""
    if cls is not Outcome:  # a subclass may have fields or checks of its own
        return cls(
            port=port,
            wait=wait,
            end=end,  # type: ignore[arg-type]
            reason=reason,
            messages=messages,
            changes=changes,
            data=data,
        )
    made = object.__new__(cls)
    object.__setattr__(
        made,
        "__dict__",
        {
            "port": port,
            "wait": wait,
            "end": end,
            "reason": reason,
            "messages": messages,
            "changes": changes,
            "data": data,
        },
    )
    return made


_OUTCOME_FIELDS = "port wait end reason messages changes data"
if [f.name for f in fields(Outcome)] != _OUTCOME_FIELDS.split():  # pragma: no cover
    raise TypeError(f"Outcome's fields must be {_OUTCOME_FIELDS!r} (see _outcome)")


@dataclass(frozen=True)
class Trigger:
    """How a trigger node enrolls customers.

    ``event_type``: enroll when such an event is ingested and ``NodeType.accepts``
    says yes. ``schedule`` (cron) with ``audience`` (a rule): enroll everyone in
    the audience at each tick, set-based. ``audience`` alone: enroll customers
    when they enter the audience. ``api``: enrolled one at a time by an explicit
    call (``Runtime.start``, behind the public API).
    """

    event_type: str | None = None
    schedule: str | None = None
    timezone: str | None = None
    audience: Mapping[str, Any] | None = None
    api: bool = False
