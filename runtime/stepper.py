"""The stepper: claim due journeys in a batch and walk each one until it must wait or ends.

Deciding (running node code against a frozen context) is kept apart from
doing (the batched writes in ``runtime.journal``). One batch costs a handful
of round trips however many journeys and steps it holds: the claim with the
customers and wake events it starts from (on PostgreSQL one statement outside
a transaction), then one transaction writing every step row, cursor move,
contact change and outbox message together (DESIGN principle 3): five round
trips on PostgreSQL for a batch without messages or contact changes.
"""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from nodes.sdk import EventRecord, Profile, Wake
from nodes.sdk.transition import transition, unsubscribed
from runtime.claims import claim_journeys, claim_with_customers
from runtime.journal import write_walks
from runtime.models import JourneyStatus
from runtime.profiles import (
    CustomerKey,
    claimed_profile,
    claimed_wake_event,
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


async def step_batch(rt: Runtime, limit: int | None = None) -> StepReport:
    """Claim one batch of due journeys, walk them, write the results. Returns counts."""
    owner = f"{rt.worker_id}:{next(_claims)}"
    now = rt.clock.now()
    rows, flows, profiles, wake_events = await _claim(rt, owner, now, limit)
    report = StepReport(claimed=len(rows))
    if not rows:
        return report
    walks = [_start(row, flows[row.flow_version_id], profiles, wake_events, now) for row in rows]
    async with rt.sessions() as session:
        walking = [w for w in walks if w.running]
        history: dict[CustomerKey, tuple[EventRecord, ...]] = {}
        for _ in range(MAX_STEPS_PER_CLAIM):
            # Node code runs with no transaction open: on SQLite the connection is the
            # process's one writer lane, and a node that awaits must not hold it.
            await session.close()
            if not walking:
                break
            wanted = {w.key for w in walking if w.needs_events() and w.key not in history}
            if wanted:
                history.update(await load_recent_events(session, wanted, now))
                await session.close()
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


async def _claim(
    rt: Runtime, owner: str, now: datetime, limit: int | None
) -> tuple[Sequence[Any], dict[int, Any], dict[CustomerKey, Profile], dict[int, EventRecord]]:
    """Claim a batch and read what its walks start from: versions, profiles, wake events."""
    size = limit or rt.settings.batch_size
    engine = rt.bound_engine
    profiles: dict[CustomerKey, Profile] = {}
    wake_events: dict[int, EventRecord] = {}
    if engine is not None and engine.dialect.name == "postgresql":
        # One statement, outside a transaction: one round trip (``claim_with_customers``).
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            rows = await claim_with_customers(
                conn, owner=owner, now=now, limit=size, lease=rt.lease
            )
            if len(rows) < size:
                # A claim whose snapshot predates another worker's committed claim picks
                # the journeys that one has just leased (their row locks ended with its
                # statement) and takes none of them: its batch comes back short, even
                # empty while journeys are due, and an empty batch ends a work loop.
                # Once more, with a fresh snapshot (for the same batch and owner).
                rows = [
                    *rows,
                    *await claim_with_customers(
                        conn, owner=owner, now=now, limit=size - len(rows), lease=rt.lease
                    ),
                ]
        for row in rows:
            key = customer_key(row.contact_id, row.visitor_id)
            if key not in profiles and (profile := claimed_profile(row)) is not None:
                profiles[key] = profile
            if row.wake_event_id is not None and (event := claimed_wake_event(row)) is not None:
                wake_events[row.wake_event_id] = event
        if not rows:
            return rows, {}, profiles, wake_events
        # Versions never change once published: almost always in the cache (no query).
        async with rt.sessions() as session:
            flows = await rt.versions.get_many(session, {row.flow_version_id for row in rows})
        return rows, flows, profiles, wake_events
    # The claim's transaction also reads what the walks start from: two round trips fewer
    # per batch than a transaction of their own, for locks held a few reads longer.
    async with rt.sessions() as session, session.begin():
        rows = await claim_journeys(session, owner=owner, now=now, limit=size, lease=rt.lease)
        if not rows:
            return rows, {}, profiles, wake_events
        flows = await rt.versions.get_many(session, {row.flow_version_id for row in rows})
        profiles = await load_profiles(
            session,
            (r.contact_id for r in rows if r.contact_id is not None),
            (r.visitor_id for r in rows if r.contact_id is None and r.visitor_id is not None),
        )
        wake_events = await load_events(
            session, (r.wake_event_id for r in rows if r.wake_event_id is not None)
        )
    return rows, flows, profiles, wake_events


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
    if row.wake_event_id is not None:
        walk.wake = Wake("event", wake_events.get(row.wake_event_id), row.waiting_since)
    elif row.waiting_since is not None:
        walk.wake = Wake("timer", None, row.waiting_since)
    return walk


async def _run_node(rt: Runtime, walk: Walk, events: tuple[EventRecord, ...]) -> None:
    node = walk.flow.nodes.get(walk.node_id)
    visit = walk.visits.get(walk.node_id, 1)
    started = rt.clock.now()
    if node is not None and node.held:
        # A missing or substituted node type holds the journey (retried with back-off,
        # never failed) until the published package is back: no other package's code runs.
        walk.fail_or_retry(node.problem or "node cannot run", visit, started, sys.maxsize)
        return
    profile = walk.profile
    assert profile is not None
    done = await transition(
        node.node if node is not None else None,
        node.config if node is not None else None,
        node.ports if node is not None else (),
        journey_id=walk.journey_id,
        flow_id=walk.flow_id,
        flow_version_id=walk.flow_version_id,
        node_id=walk.node_id,
        visit=visit,
        entered_at=walk.entered_at,
        data=walk.data,
        profile=profile,
        events=events,
        clock=rt.clock,
        services=rt.services,
        wake=walk.wake,
        exit_on=walk.flow.exit_rules(walk.node_id, unsubscribed=walk.unsubscribed),
        problem=node.problem if node is not None else f"node {walk.node_id!r} is not in the flow",
    )
    if done.kind == "interrupted":
        walk.interrupt(JourneyStatus.exited, done.reason or "exited", started)
        return
    if done.outcome is None:
        walk.fail_or_retry(
            done.error or "node cannot run",
            visit,
            started,
            rt.settings.max_step_attempts,
            seen=done.seen,
        )
        return
    assert node is not None
    outcome = done.outcome
    walk.record(node.id, node.type_id, visit, outcome, started, done.elapsed_ms, done.seen)
    if done.profile is not profile:
        walk.profile = done.profile
        walk.unsubscribed = unsubscribed(done.profile)
    if done.kind == "waited":
        walk.park(outcome, started)
    elif done.kind == "ended":
        status = JourneyStatus.exited if outcome.end == "exited" else JourneyStatus.completed
        walk.end(status, outcome.reason or outcome.end or "ended", started)
    else:
        assert outcome.port is not None
        target = walk.flow.target(node.id, outcome.port)
        if target is None:
            walk.end(JourneyStatus.completed, "end of flow", started)
        else:
            walk.move(target)
