"""The stepper: claim due journeys in a batch and walk each one until it must wait or ends.

Deciding (running node code against a frozen context) is kept apart from
doing (the batched writes in ``runtime.journal``). One batch costs a handful
of round trips however many journeys and steps it holds: the claim, the
profile load, then one transaction writing every step row, cursor move,
contact change and outbox message together (DESIGN principle 3).
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from backend.models import JourneyStatus
from nodes.sdk import ContactChanges, Context, EventRecord, JourneyInfo, Outcome, Profile, Wake
from runtime.claims import claim_journeys
from runtime.journal import write_walks
from runtime.profiles import (
    CustomerKey,
    customer_key,
    load_events,
    load_profiles,
    load_recent_events,
)
from runtime.walk import Walk, retry_delay

if TYPE_CHECKING:
    from runtime.engine import Runtime

__all__ = ["StepReport", "retry_delay", "step_batch"]

log = logging.getLogger(__name__)
node_log = logging.getLogger("touchflow.nodes")

# A journey takes at most this many steps per claim, so one long chain of
# instant nodes cannot hold a batch (validation already forbids loops without a wait).
MAX_STEPS_PER_CLAIM = 64
_claims = itertools.count(1)


@dataclass
class StepReport:
    claimed: int = 0
    steps: int = 0
    messages: int = 0
    written: int = 0
    ended: int = 0


def unsubscribed(profile: Profile) -> bool:
    """Email consent (or consent for everything) explicitly withdrawn."""
    for channel in ("email", "all"):
        entry = profile.consent.get(channel)
        if isinstance(entry, dict) and entry.get("granted") is False:
            return True
    return False


async def step_batch(rt: Runtime, limit: int | None = None) -> StepReport:
    """Claim one batch of due journeys, walk them, write the results. Returns counts."""
    owner = f"{rt.worker_id}:{next(_claims)}"
    now = rt.clock.now()
    async with rt.sessions() as session, session.begin():
        rows = await claim_journeys(
            session, owner=owner, now=now, limit=limit or rt.settings.batch_size, lease=rt.lease
        )
    report = StepReport(claimed=len(rows))
    if not rows:
        return report
    async with rt.sessions() as session:
        flows = await rt.versions.get_many(session, {row.flow_version_id for row in rows})
        profiles = await load_profiles(
            session,
            (r.contact_id for r in rows if r.contact_id is not None),
            (r.visitor_id for r in rows if r.contact_id is None and r.visitor_id is not None),
        )
        wake_events = await load_events(
            session, (r.wake_event_id for r in rows if r.wake_event_id is not None)
        )
        walks = [
            _start(row, flows[row.flow_version_id], profiles, wake_events, now) for row in rows
        ]
        walking = [w for w in walks if w.running]
        history: dict[CustomerKey, tuple[EventRecord, ...]] = {}
        for _ in range(MAX_STEPS_PER_CLAIM):
            if not walking:
                break
            wanted = {w.key for w in walking if w.needs_events() and w.key not in history}
            if wanted:
                history.update(await load_recent_events(session, wanted, now))
            for walk in walking:
                await _run_node(rt, walk, history.get(walk.key, ()))
            walking = [w for w in walks if w.running]
        await session.rollback()
    for walk in walking:
        walk.pause_for_next_claim(rt.clock.now())
    written = await write_walks(rt, owner, walks)
    report.written = len(written)
    for walk in written:
        report.steps += len(walk.steps)
        report.messages += len(walk.messages)
        report.ended += walk.status not in (JourneyStatus.active, JourneyStatus.waiting)
    return report


def _start(
    row: Any,
    flow: Any,
    profiles: dict[CustomerKey, Profile],
    wake_events: dict[int, EventRecord],
    now: datetime,
) -> Walk:
    key = customer_key(row.contact_id, row.visitor_id)
    walk = Walk(row=row, flow=flow, key=key, profile=profiles.get(key), now=now)
    if walk.profile is None:
        walk.running = False  # the customer was deleted; the journey row went with it
        return walk
    if "unsubscribed" in flow.settings.exit_on and unsubscribed(walk.profile):
        walk.interrupt(JourneyStatus.exited, "unsubscribed", now)
        return walk
    if row.wake_event_id is not None:
        walk.wake = Wake("event", wake_events.get(row.wake_event_id), row.waiting_since)
    elif row.waiting_since is not None:
        walk.wake = Wake("timer", None, row.waiting_since)
    return walk


async def _run_node(rt: Runtime, walk: Walk, events: tuple[EventRecord, ...]) -> None:
    node = walk.flow.nodes.get(walk.node_id)
    visit = walk.visits.get(walk.node_id, 1)
    started = rt.clock.now()
    tick = time.perf_counter()
    if node is None or node.node is None or node.config is None:
        problem = node.problem if node is not None else f"node {walk.node_id!r} is not in the flow"
        # A missing or substituted node type holds the journey (retried with back-off,
        # never failed) until the published package is back.
        limit = sys.maxsize if node is not None and node.held else rt.settings.max_step_attempts
        walk.fail_or_retry(problem or "node cannot run", visit, started, limit)
        return
    profile = walk.profile
    assert profile is not None
    ctx: Context[Any] = Context(
        config=node.config,
        journey=JourneyInfo(
            id=walk.row.id,
            flow_id=walk.row.flow_id,
            flow_version_id=walk.row.flow_version_id,
            node_id=walk.node_id,
            visit=visit,
            entered_at=walk.row.entered_at,
            data=MappingProxyType(walk.data),
        ),
        profile=profile,
        events=events,
        clock=rt.clock,
        log=logging.LoggerAdapter(node_log, {"journey_id": walk.row.id, "node_id": node.id}),
        services=rt.services,
        wake=walk.wake,
    )
    try:
        outcome: Outcome = await node.node.run(ctx)
        if outcome.port is not None and outcome.port not in node.ports:
            raise ValueError(f"the node chose port {outcome.port!r}, which it does not declare")
    except Exception as exc:
        node_log.warning("node %s failed for journey %s: %s", node.id, walk.row.id, exc)
        walk.fail_or_retry(
            f"{type(exc).__name__}: {exc}", visit, started, rt.settings.max_step_attempts
        )
        return
    elapsed_ms = (time.perf_counter() - tick) * 1000
    walk.record(node.id, node.type_id, visit, outcome, started, elapsed_ms)
    if outcome.changes is not None and not outcome.changes.is_empty():
        walk.profile = apply_changes(profile, outcome.changes)
    if outcome.wait is not None:
        walk.park(outcome, started)
    elif outcome.end is not None:
        status = JourneyStatus.exited if outcome.end == "exited" else JourneyStatus.completed
        walk.end(status, outcome.reason or outcome.end, started)
    else:
        assert outcome.port is not None
        target = walk.flow.target(node.id, outcome.port)
        if target is None:
            walk.end(JourneyStatus.completed, "end of flow", started)
        else:
            walk.move(target)


def apply_changes(profile: Profile, changes: ContactChanges) -> Profile:
    """The profile as the next node should see it after ``changes`` (the DB write is separate)."""
    attributes = {
        k: v for k, v in profile.attributes.items() if k not in set(changes.unset_attributes)
    }
    attributes.update(changes.set_attributes)
    tags = [t for t in profile.tags if t not in set(changes.remove_tags)]
    tags += [t for t in changes.add_tags if t not in tags]
    return Profile(
        kind=profile.kind,
        id=profile.id,
        email=profile.email,
        phone=profile.phone,
        first_name=profile.first_name,
        last_name=profile.last_name,
        attributes=attributes,
        tags=tuple(tags),
        lifecycle_stage=changes.lifecycle_stage or profile.lifecycle_stage,
        timezone=profile.timezone,
        consent=profile.consent,
        owner_id=profile.owner_id,
    )
