"""Test mode: walk one made-up (or real) customer through the draft without sending anything.

The draft is compiled as the runtime compiles a version and each node's
``run`` is called with a context built like the stepper's, but time is
simulated: a wait ends at the first test event it waits for, or at its
timer. Messages are listed, never written to the outbox; contact changes
apply to the test profile only. Nothing is stored.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from backend.i18n import _
from nodes.sdk import (
    Context,
    EventRecord,
    EventWait,
    JourneyInfo,
    NodeRegistry,
    Outcome,
    Profile,
    Services,
    Wake,
)
from runtime.stepper import apply_changes
from runtime.versions import CompiledFlow, compile_version

MAX_STEPS = 100
# Match keys that tie an event to one real journey; in a test run there is only this one.
JOURNEY_KEYS = frozenset({"journey_id", "node_id"})
log = logging.getLogger("touchflow.editor.test")


@dataclass
class SimulatedClock:
    """Simulated time: it only moves when a wait ends."""

    at: datetime

    def now(self) -> datetime:
        return self.at


@dataclass(frozen=True)
class TrialStep:
    number: int
    node_id: str
    at: datetime
    result: str
    messages: tuple[str, ...] = ()
    port: str | None = None
    error: str | None = None


@dataclass
class TrialRun:
    steps: list[TrialStep] = field(default_factory=list)
    ending: str = ""
    taken: set[tuple[str, str]] = field(default_factory=set)

    @property
    def visited(self) -> dict[str, list[int]]:
        """Node id -> the step numbers at which the customer was there."""
        seen: dict[str, list[int]] = {}
        for step in self.steps:
            seen.setdefault(step.node_id, []).append(step.number)
        return seen


def _matches(wait: EventWait, event: EventRecord) -> bool:
    return event.type == wait.type and all(
        event.properties.get(key) == value
        for key, value in wait.match.items()
        if key not in JOURNEY_KEYS
    )


def _summary(outcome: Outcome) -> tuple[str, ...]:
    lines = []
    for message in outcome.messages:
        payload = message.payload
        detail = payload.get("subject") or payload.get("title") or payload.get("text") or ""
        lines.append(f"{message.channel}: {detail}" if detail else message.channel)
    return tuple(lines)


def _entry(flow: CompiledFlow, events: list[EventRecord], profile: Profile) -> str | None:
    """The trigger the first test event would fire, else the first trigger."""
    for event in events[:1]:
        for trigger in flow.triggers:
            fires = trigger.trigger is not None and trigger.trigger.event_type == event.type
            if fires and trigger.accepts(event, profile):
                return trigger.id
    return flow.triggers[0].id if flow.triggers else None


async def run_test(
    raw_graph: dict[str, Any],
    registry: NodeRegistry,
    profile: Profile,
    events: list[EventRecord],
    start: datetime,
    services: Services,
) -> TrialRun:
    """Walk ``profile`` through ``raw_graph`` from ``start``, with ``events`` as what they do."""
    flow = compile_version(0, 0, raw_graph, registry)
    events = sorted(events, key=lambda e: e.occurred_at)
    run = TrialRun()
    node_id = _entry(flow, events, profile)
    if node_id is None:
        run.ending = _("The flow has no trigger, so nobody would enter it.")
        return run
    clock = SimulatedClock(start)
    visits: Counter[str] = Counter({node_id: 1})
    data: dict[str, Any] = {}
    wake: Wake | None = None
    for number in range(1, MAX_STEPS + 1):
        node = flow.nodes[node_id]
        if node.node is None or node.config is None:
            run.steps.append(
                TrialStep(number, node_id, clock.now(), _("cannot run"), error=node.problem)
            )
            run.ending = _("The journey would fail here.")
            return run
        ctx: Context[Any] = Context(
            config=node.config,
            journey=JourneyInfo(0, 0, 0, node_id, visits[node_id], start, MappingProxyType(data)),
            profile=profile,
            events=tuple(e for e in events if e.occurred_at <= clock.now()),
            clock=clock,
            log=logging.LoggerAdapter(log, {"node_id": node_id}),
            services=services,
            wake=wake,
        )
        try:
            outcome = await node.node.run(ctx)
        except Exception as exc:  # the marketer sees why the step would fail
            error = f"{type(exc).__name__}: {exc}"
            run.steps.append(TrialStep(number, node_id, clock.now(), _("error"), error=error))
            run.ending = _("The journey would fail here (and be retried).")
            return run
        if outcome.changes is not None and not outcome.changes.is_empty():
            profile = apply_changes(profile, outcome.changes)
        data.update(outcome.data)
        messages = _summary(outcome)
        if outcome.wait is not None:
            wait, waited_since = outcome.wait, clock.now()
            until = wait.until
            arrived = next(
                (
                    e
                    for e in events
                    if e.occurred_at > waited_since
                    and (until is None or e.occurred_at <= until)
                    and wait.event is not None
                    and _matches(wait.event, e)
                ),
                None,
            )
            if arrived is not None:
                clock.at, wake = arrived.occurred_at, Wake("event", arrived, waited_since)
                result = _("waits until %(event)s at %(when)s") % {
                    "event": arrived.type,
                    "when": _when(arrived.occurred_at, start),
                }
            elif until is not None:
                clock.at, wake = until, Wake("timer", None, waited_since)
                result = _("waits until %(when)s") % {"when": _when(until, start)}
            else:
                run.steps.append(TrialStep(number, node_id, waited_since, _("waits"), messages))
                assert wait.event is not None
                run.ending = _("Waits for %(event)s, which none of the test events is.") % {
                    "event": wait.event.type
                }
                return run
            run.steps.append(TrialStep(number, node_id, waited_since, result, messages))
            continue
        if outcome.end is not None:
            run.steps.append(TrialStep(number, node_id, clock.now(), outcome.end, messages))
            ended = _("exits") if outcome.end == "exited" else _("completes")
            run.ending = _("The journey %(ended)s: %(reason)s.") % {
                "ended": ended,
                "reason": outcome.reason or outcome.end,
            }
            return run
        port = outcome.port or "next"
        run.steps.append(TrialStep(number, node_id, clock.now(), f"→ {port}", messages, port))
        target = flow.target(node_id, port)
        if target is None:
            run.ending = _("The journey completes: nothing follows this step.")
            return run
        run.taken.add((node_id, port))
        node_id, wake = target, None
        visits[node_id] += 1
    run.ending = _("Stopped after %(num)d steps: the flow may loop.") % {"num": MAX_STEPS}
    return run


def _when(moment: datetime, start: datetime) -> str:
    delta = moment - start
    if delta < timedelta(hours=1):
        return _("+%(num)d min") % {"num": delta.total_seconds() // 60}
    if delta < timedelta(days=2):
        return _("+%(num)s h") % {"num": f"{delta.total_seconds() / 3600:g}"}
    return _("+%(num)s days") % {"num": f"{delta.total_seconds() / 86400:g}"}
