"""The context handed to ``NodeType.run``: the only channel between runtime and node code."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from nodes.sdk.egress import EgressPolicy
from nodes.sdk.types import EventRecord, JourneyInfo, Profile, Wake

ConfigT = TypeVar("ConfigT", bound=BaseModel)

# How far back ``Context.events`` reaches: the runtime loads this many days of a
# customer's events for the nodes that ask for them (``NodeType.needs_events``).
EVENT_HISTORY_DAYS = 90


class Clock(Protocol):
    """Where "now" comes from. Tests inject a clock they can move forward."""

    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class EgressGuard(Protocol):
    """The server's outgoing-request policy, as a node sees it."""

    def refusal(self, url: str) -> str | None:
        """Why the server will not call ``url`` (loopback, private network...), or None."""
        ...


@dataclass(frozen=True)
class Services:
    """What a node may use besides its inputs. Nodes do no other I/O.

    ``sign`` makes an unforgeable token (for tracking and unsubscribe links);
    ``egress`` says whether the server may call a URL the marketer typed: a node
    that hands a URL to a channel checks it here, so a refused address fails the
    step with a clear reason (the channel's egress client checks again after
    resolving the name); ``extras`` carries services added by later subsystems.
    """

    base_url: str = "http://127.0.0.1:8000"
    sign: Callable[[str], str] | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)
    egress: EgressGuard = field(default_factory=EgressPolicy)


@dataclass(frozen=True)
class Context(Generic[ConfigT]):
    """Everything a node sees while it runs: frozen, so a node cannot change runtime state.

    ``events`` holds the customer's events of the last ``EVENT_HISTORY_DAYS``
    days, newest last (only for node types with ``needs_events``). ``wake`` is set
    when a waiting node runs again after its timer or event.
    """

    config: ConfigT
    journey: JourneyInfo
    profile: Profile
    events: tuple[EventRecord, ...]
    clock: Clock
    log: logging.LoggerAdapter[logging.Logger]
    services: Services = field(default_factory=Services)
    wake: Wake | None = None

    @property
    def now(self) -> datetime:
        return self.clock.now()
