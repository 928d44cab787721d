"""Simulation: the path one customer would take through a graph, with nothing sent or saved.

``simulate`` compiles a graph as the runtime compiles a version and runs
each node through the stepper's own transition (``nodes.sdk.transition``:
same context, same port check, same exit on unsubscribe), but time is
simulated: a wait ends at the first given event it waits for, or at its
timer, and the clock jumps there. Messages are returned, never written to
the outbox; contact changes apply to the simulated profile only; nothing
touches the database. The editor's test mode is its user.

Event matching follows ``runtime.events.matches`` with one difference: the
simulated journey is the customer's only one, so an event need not carry
``journey_id``, ``node_id`` or ``message`` (if it does, they must equal the
wait's, so an open of another email does not end a wait for this one). A
step that waits for its delivery's outcome is delivered at once unless a
given ``message.outcome`` event says otherwise.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from nodes.sdk import (
    DELIVERY_EVENT,
    EventRecord,
    EventWait,
    Message,
    NodeRegistry,
    Profile,
    Services,
    Wake,
)
from nodes.sdk.transition import transition
from runtime.versions import CompiledFlow, compile_version

__all__ = ["MAX_STEPS", "SimStep", "Simulation", "simulate"]

MAX_STEPS = 100
JOURNEY_ID = 0  # what ctx.journey.id is in a simulation (no row exists)
# Keys that tie an event to one real journey and message: implied when an event leaves them out.
JOURNEY_KEYS = frozenset({"journey_id", "node_id", "message"})
log = logging.getLogger("touchflow.simulate")

StepKind = Literal["went", "waited", "stuck", "ended", "error", "cannot_run"]
Ending = Literal["no_trigger", "went_nowhere", "stuck", "ended", "error", "cannot_run", "loop"]


@dataclass
class SimulatedClock:
    """Simulated time: it moves only when a wait ends."""

    at: datetime

    def now(self) -> datetime:
        return self.at


@dataclass(frozen=True)
class SimStep:
    """One node run: where, when (simulated), and what came of it.

    ``kind`` is "went" (through ``port``), "waited" (until ``until``, woken by
    ``event`` or by its timer when ``event`` is None), "stuck" (waits for an
    event none of the given ones is), "ended" (``end`` with ``reason``),
    "error" (the node raised ``error``) or "cannot_run" (the node type is
    missing or its config invalid: ``error`` says why).
    """

    number: int
    node_id: str
    at: datetime
    kind: StepKind
    messages: tuple[Message, ...] = ()
    port: str | None = None
    until: datetime | None = None
    event: EventRecord | None = None
    waits_for: str | None = None
    end: Literal["completed", "exited"] | None = None
    reason: str | None = None
    error: str | None = None


@dataclass
class Simulation:
    """The path, how it ended (the last step's kind, or "no_trigger", "went_nowhere",
    "loop"), and the connections it took as (node id, port)."""

    steps: list[SimStep] = field(default_factory=list)
    ending: Ending = "no_trigger"
    taken: set[tuple[str, str]] = field(default_factory=set)

    @property
    def visited(self) -> dict[str, list[int]]:
        """Node id -> the step numbers at which the customer was there."""
        seen: dict[str, list[int]] = {}
        for step in self.steps:
            seen.setdefault(step.node_id, []).append(step.number)
        return seen


def wakes(wait: EventWait, event: EventRecord) -> bool:
    """Whether ``event`` ends ``wait`` for the simulated journey."""
    if event.type != wait.type:
        return False
    for key, value in wait.match.items():
        if key in JOURNEY_KEYS and key not in event.properties:
            continue
        if event.properties.get(key) != value:
            return False
    return True


def _entry(flow: CompiledFlow, events: Sequence[EventRecord], profile: Profile) -> str | None:
    """The trigger the first event would fire, else the first trigger."""
    for event in events[:1]:
        for trigger in flow.triggers:
            fires = trigger.trigger is not None and trigger.trigger.event_type == event.type
            if fires and trigger.accepts(event, profile):
                return trigger.id
    return flow.triggers[0].id if flow.triggers else None


async def simulate(
    raw_graph: Mapping[str, Any],
    registry: NodeRegistry,
    profile: Profile,
    events: Sequence[EventRecord],
    *,
    start: datetime,
    services: Services,
    max_steps: int = MAX_STEPS,
    flow_id: int = 0,
) -> Simulation:
    """Walk ``profile`` through ``raw_graph`` from ``start``, with ``events`` as what they do.

    The customer enters at the trigger the first event fires (else the first
    trigger) and goes on until the journey ends, a node fails, a wait can
    never end, or ``max_steps`` nodes ran (a loop). Nodes get ``services``
    as they would at run time, so a node that reads through them still reads;
    ``flow_id`` is the flow's, so a split sends the customer where it would.
    """
    flow = compile_version(0, flow_id, dict(raw_graph), registry)
    events = sorted(events, key=lambda e: e.occurred_at)
    run = Simulation()
    node_id = _entry(flow, events, profile)
    if node_id is None:
        return run
    clock = SimulatedClock(start)
    visits: Counter[str] = Counter({node_id: 1})
    data: dict[str, Any] = {}
    wake: Wake | None = None
    for number in range(1, max_steps + 1):
        node = flow.nodes[node_id]
        done = await transition(
            node.node,
            node.config,
            node.ports,
            journey_id=JOURNEY_ID,
            flow_id=flow_id,
            flow_version_id=0,
            node_id=node_id,
            visit=visits[node_id],
            entered_at=start,
            data=data,
            profile=profile,
            events=tuple(e for e in events if e.occurred_at <= clock.now()),
            clock=clock,
            services=services,
            wake=wake,
            exit_on=flow.exit_rules(node_id),
            problem=node.problem,
            log=log,
        )
        if done.kind == "interrupted":
            run.steps.append(
                SimStep(number, node_id, clock.now(), "ended", end="exited", reason=done.reason)
            )
            run.ending = "ended"
            return run
        if done.kind in ("cannot_run", "failed"):
            # The marketer sees why the step would fail (or cannot run at all).
            cannot = done.kind == "cannot_run"
            kind: StepKind = "cannot_run" if cannot else "error"
            run.steps.append(SimStep(number, node_id, clock.now(), kind, error=done.error))
            run.ending = "cannot_run" if cannot else "error"
            return run
        outcome = done.outcome
        assert outcome is not None
        profile, data = done.profile, dict(done.data)
        messages = outcome.messages
        if outcome.wait is not None:
            wait, since = outcome.wait, clock.now()
            arrived = next(
                (
                    e
                    for e in events
                    if e.occurred_at > since
                    and (wait.until is None or e.occurred_at <= wait.until)
                    and wait.event is not None
                    and wakes(wait.event, e)
                ),
                None,
            )
            waits_for = wait.event.type if wait.event is not None else None
            if arrived is None and waits_for == DELIVERY_EVENT:
                # Nothing is sent in test mode; unless the given events say how the
                # delivery went, it went through at once.
                assert wait.event is not None
                arrived = EventRecord(
                    DELIVERY_EVENT,
                    since,
                    {**wait.event.match, "outcome": "delivered"},
                    source="test",
                )
            if arrived is None and wait.until is None:
                run.steps.append(
                    SimStep(number, node_id, since, "stuck", messages, waits_for=waits_for)
                )
                run.ending = "stuck"
                return run
            if arrived is not None:
                clock.at, wake = arrived.occurred_at, Wake("event", arrived, since)
            else:
                assert wait.until is not None
                clock.at, wake = wait.until, Wake("timer", None, since)
            run.steps.append(
                SimStep(
                    number,
                    node_id,
                    since,
                    "waited",
                    messages,
                    until=clock.at,
                    event=arrived,
                    waits_for=waits_for,
                )
            )
            continue
        if outcome.end is not None:
            run.steps.append(
                SimStep(
                    number,
                    node_id,
                    clock.now(),
                    "ended",
                    messages,
                    end=outcome.end,
                    reason=outcome.reason,
                )
            )
            run.ending = "ended"
            return run
        port = outcome.port or "next"
        run.steps.append(SimStep(number, node_id, clock.now(), "went", messages, port=port))
        target = flow.target(node_id, port)
        if target is None:
            run.ending = "went_nowhere"
            return run
        run.taken.add((node_id, port))
        node_id, wake = target, None
        visits[node_id] += 1
    run.ending = "loop"
    return run
