"""The Runtime: everything the engine needs, in one object the web app and workers share.

Build one with ``build_runtime(settings, sessions=...)`` (or construct it
directly in tests): the caller owns the settings and the database engine
(``runtime.db.create_engine``) and hands both in. Then either let an executor
drive it (``runtime.executor``) or call ``drain()`` to run every due step and
delivery and return.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from nodes.sdk import Clock, NodeRegistry, Services, SystemClock, discover
from runtime import admin, conversions, enroll, entries, events, results, retention
from runtime.delivery import Deliverer
from runtime.doorbell import Doorbell, NullDoorbell
from runtime.outbox import DeliveryReport, NextClaim, deliver_batch
from runtime.services import build_services
from runtime.settings import RuntimeSettings
from runtime.stepper import StepReport, step_batch
from runtime.versions import VersionCache

__all__ = ["Runtime", "WorkReport", "build_runtime", "default_deliverers"]

log = logging.getLogger(__name__)

# How long one ``work`` call may spend pruning before it gets on with stepping.
RETENTION_BUDGET_SECONDS = 2.0


# Goals are checked set-based over every flow with a goal (``runtime.conversions``):
# a minute's delay in a conversion report costs nobody anything, a join every
# few seconds would.
CONVERSION_INTERVAL = timedelta(minutes=1)


def _worker_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class WorkReport:
    """What one ``work``/``drain`` call did, summed over its batches."""

    batches: int = 0
    claimed: int = 0
    steps: int = 0
    messages: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    withheld: int = 0
    lost: int = 0
    entered: int = 0
    folded: int = 0
    converted: int = 0

    def add_steps(self, report: StepReport) -> None:
        self.batches += 1
        self.claimed += report.claimed
        self.steps += report.steps
        self.messages += report.messages

    def add_delivery(self, report: DeliveryReport) -> None:
        self.sent += report.sent
        self.retried += report.retried
        self.dead += report.dead
        self.withheld += report.withheld
        self.lost += report.lost


@dataclass
class Runtime:
    """The engine's dependencies. Cheap to keep for the life of the process.

    ``lease`` bounds how long a crashed worker's claims stay hidden from the
    others; ``max_delivery_attempts`` is the outbox's dead-letter limit.
    """

    sessions: async_sessionmaker[AsyncSession]
    registry: NodeRegistry
    settings: RuntimeSettings
    clock: Clock = field(default_factory=SystemClock)
    deliverers: dict[str, Deliverer] = field(default_factory=dict)
    services: Services = field(default_factory=Services)
    doorbell: Doorbell = field(default_factory=NullDoorbell)
    lease: timedelta = timedelta(seconds=60)
    max_delivery_attempts: int = 8
    worker_id: str = field(default_factory=_worker_id)
    versions: VersionCache = field(init=False)
    # The outbox's per-channel limit on messages in flight in this process.
    channel_gates: dict[str, asyncio.Semaphore] = field(default_factory=dict, init=False)
    # The outbox's group committer of delivery results (``runtime.outbox``), made on first use.
    outbox_recorder: Any = field(default=None, init=False, repr=False)
    # When schedule and audience triggers were last checked (see ``enter``), and
    # the last tick each schedule trigger handled here ((version id, node id) -> tick).
    entries_checked_at: datetime | None = field(default=None, init=False)
    conversions_checked_at: datetime | None = field(default=None, init=False)
    handled_ticks: dict[tuple[int, str], datetime] = field(default_factory=dict, init=False)
    # Rollups register their watermark per pruned table ("steps", "events"): see runtime.retention.
    retention_watermarks: dict[str, retention.Watermark] = field(default_factory=dict)
    # When this process prunes next (``work`` runs it once per retention interval).
    retention_due_at: datetime | None = field(default=None, init=False)

    @property
    def bound_engine(self) -> AsyncEngine | None:
        """The engine this runtime's sessions use (None for a session maker made without one)."""
        bind = self.sessions.kw.get("bind")
        return bind if isinstance(bind, AsyncEngine) else None

    @property
    def on_postgresql(self) -> bool:
        engine = self.bound_engine
        return engine is not None and engine.dialect.name == "postgresql"

    def __post_init__(self) -> None:
        self.versions = VersionCache(self.registry)
        # Retention never prunes a step or event the results rollup has yet to count.
        self.retention_watermarks.setdefault("steps", results.steps_counted_before)
        self.retention_watermarks.setdefault("events", results.events_counted_before)

    async def enter(self) -> entries.EntryReport:
        """Fire due schedule ticks and enroll new audience matches (``runtime.entries``)."""
        self.entries_checked_at = self.clock.now()
        return await entries.enter_due(self)

    async def _enter_if_due(self, report: WorkReport) -> None:
        # Set-based entry checks cost a query per trigger, so they run once per
        # sweep interval rather than on every doorbell ring.
        last = self.entries_checked_at
        interval = timedelta(seconds=self.settings.sweep_interval_seconds)
        if last is None or self.clock.now() - last >= interval:
            entered = await self.enter()
            report.entered += entered.scheduled + entered.audience
            # The results rollup is folded on the same beat, off the step hot path.
            report.folded += (await self.fold_results()).total
        last = self.conversions_checked_at
        if last is None or self.clock.now() - last >= max(interval, CONVERSION_INTERVAL):
            report.converted += await self.record_conversions()

    async def record_conversions(self) -> int:
        """Credit the goals contact changes and events met since the last sweep.

        Goal nodes met by a stage or attribute move their journeys on (they
        record the conversion when they run); flow goals record it at once
        (``runtime.conversions``).
        """
        now = self.conversions_checked_at = self.clock.now()
        async with self.sessions() as session, session.begin():
            reached = await conversions.reach_condition_goals(session, self.versions, now)
            reached += await conversions.record_flow_goals(session, now)
        if reached:
            self.doorbell.ring()  # journeys moved onto a goal are due now
        return reached

    async def fold_results(self) -> results.FoldReport:
        """Count new steps, messages and engagement events into the results rollup."""
        return await results.fold_results(self)

    async def prune(self, *, budget_seconds: float | None = None) -> retention.PruneReport:
        """Prune steps, events and message bodies past their age (``runtime.retention``)."""
        return await retention.prune(
            self.sessions,
            retention.RetentionPolicy.from_settings(self.settings),
            self.clock.now(),
            watermarks=self.retention_watermarks,
            budget_seconds=budget_seconds,
        )

    async def _prune_if_due(self) -> None:
        # Once per retention interval, within a small time budget, so stepping never waits
        # long; a backlog continues at the next sweep. A failure must not stop the stepping.
        now = self.clock.now()
        if self.retention_due_at is not None and now < self.retention_due_at:
            return
        interval = timedelta(minutes=self.settings.retention_interval_minutes)
        try:
            report = await self.prune(budget_seconds=RETENTION_BUDGET_SECONDS)
        except Exception:
            log.exception("retention failed; trying again in %s", interval)
            self.retention_due_at = now + interval
            return
        if report.total:
            log.info(
                "retention: pruned %d steps, %d events, %d message bodies",
                report.steps,
                report.events,
                report.bodies,
            )
        self.retention_due_at = now if not report.finished else now + interval

    async def step(self, limit: int | None = None) -> StepReport:
        """Claim and walk one batch of due journeys."""
        return await step_batch(self, limit)

    async def deliver(self, limit: int | None = None) -> DeliveryReport:
        """Deliver one batch of due outbox messages."""
        return await deliver_batch(self, limit)

    async def work(self, *, budget_seconds: float | None = None) -> WorkReport:
        """Step and deliver until nothing is due (or the time budget is spent).

        This is the job every executor runs, for a doorbell ring and for the
        periodic sweep alike: it always re-reads due work from the database.
        """
        report = WorkReport()
        deadline = time.monotonic() + budget_seconds if budget_seconds else None
        await self._enter_if_due(report)
        await self._prune_if_due()
        # On PostgreSQL the messages of the last batch go out while the next one steps;
        # SQLite's single writer takes one at a time.
        overlap = self.on_postgresql
        while True:
            delivering = (
                asyncio.create_task(self._deliver_round(report, deadline)) if overlap else None
            )
            try:
                stepped = await self.step()
            except BaseException as exc:
                if delivering is not None:
                    if isinstance(exc, asyncio.CancelledError):
                        delivering.cancel()
                    await asyncio.gather(delivering, return_exceptions=True)
                raise
            report.add_steps(stepped)
            delivered = await (delivering or self._deliver_round(report, deadline))
            if stepped.claimed == 0 and delivered == 0:
                return report
            if deadline is not None and time.monotonic() > deadline:
                self.doorbell.ring()  # more is due: make sure someone continues
                return report

    async def _deliver_round(self, report: WorkReport, deadline: float | None) -> int:
        """Deliver up to a journey batch's worth of messages; returns how many were claimed.

        A delivery claim is small (a few rounds of a channel's connections), a
        step batch is large: one claim per step would leave most of what a step
        wrote waiting behind an empty step claim each time. Each claim is sent
        well within its lease however slow the provider: on PostgreSQL the next
        claim is taken when the last one's final round is in flight (never more
        than two at once), so the connections do not stand idle during a claim's
        transaction and the new claim's messages wait for one round at most.
        """
        overlap = self.on_postgresql
        claimed = 0
        claims: list[asyncio.Task[DeliveryReport]] = []
        try:
            while claimed < self.settings.batch_size:
                running = [c for c in claims if not c.done()]
                if len(running) > 1:  # never more than two: the older one finishes first
                    await asyncio.wait(running[:1])
                signal = NextClaim()
                claim = asyncio.create_task(deliver_batch(self, next_claim=signal))
                claims.append(claim)
                ready = asyncio.create_task(signal.ready.wait())
                try:
                    await asyncio.wait(
                        {claim, ready} if overlap else {claim},
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    ready.cancel()
                if any(c.done() and c.exception() is not None for c in claims):
                    break  # the others finish what they claimed; then the error goes up
                claimed += signal.claimed
                if signal.claimed == 0:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    break
        except BaseException:  # cancelled: the claims in flight go with the caller
            for claim in claims:
                claim.cancel()
            await asyncio.gather(*claims, return_exceptions=True)
            raise
        failure: BaseException | None = None
        for outcome in await asyncio.gather(*claims, return_exceptions=True):
            if isinstance(outcome, BaseException):
                failure = failure or outcome
            else:
                report.add_delivery(outcome)
        if failure is not None:
            raise failure
        return claimed

    async def drain(self, *, max_batches: int = 100_000) -> WorkReport:
        """Run until no step or delivery is due at ``clock.now()``: for tests and scripts."""
        report = WorkReport()
        await self._enter_if_due(report)
        for _ in range(max_batches):
            stepped = await self.step()
            report.add_steps(stepped)
            delivered = await self.deliver()
            report.add_delivery(delivered)
            if stepped.claimed == 0 and delivered.claimed == 0:
                return report
        raise RuntimeError(f"drain did not finish within {max_batches} batches")

    async def ingest(self, type: str, **kwargs: Any) -> events.IngestResult:
        """Ingest one event in its own transaction and ring the doorbell after commit.

        Keyword arguments are those of ``runtime.events.ingest`` (``contact_id``,
        ``visitor_id``, ``properties``, ``dedupe_key``, ``occurred_at``, ``source``).
        """
        async with self.sessions() as session, session.begin():
            return await events.ingest(
                session,
                self.versions,
                type=type,
                now=self.clock.now(),
                doorbell=self.doorbell,
                **kwargs,
            )

    async def enroll_audience(
        self,
        flow_id: int,
        condition: ColumnElement[bool],
        *,
        trigger_node_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Set-based enrollment (see ``runtime.enroll.enroll_audience``), then ring."""
        async with self.sessions() as session, session.begin():
            count = await enroll.enroll_audience(
                session,
                self.versions,
                flow_id,
                condition,
                now=self.clock.now(),
                trigger_node_id=trigger_node_id,
                data=dict(data or {}),
            )
        if count:
            self.doorbell.ring()
        return count

    async def start(
        self,
        flow_id: int,
        *,
        contact_id: int | None = None,
        visitor_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int | None:
        """Start a flow for one customer through its API trigger; returns the journey id.

        None when the flow's re-entry policy keeps the customer out; raises
        ``runtime.entries.FlowNotStartable`` when the flow cannot be started this way.
        """
        async with self.sessions() as session, session.begin():
            journey_id = await entries.start_flow(
                session,
                self.versions,
                flow_id,
                now=self.clock.now(),
                contact_id=contact_id,
                visitor_id=visitor_id,
                data=data,
            )
        if journey_id is not None:
            self.doorbell.ring()
        return journey_id

    async def retry_journey(self, journey_id: int) -> None:
        async with self.sessions() as session, session.begin():
            await admin.retry_journey(session, journey_id, now=self.clock.now())
        self.doorbell.ring()

    async def cancel_journey(self, journey_id: int) -> None:
        async with self.sessions() as session, session.begin():
            await admin.cancel_journey(session, journey_id, now=self.clock.now())

    async def retry_message(self, message_id: int) -> None:
        async with self.sessions() as session, session.begin():
            await admin.retry_message(session, message_id, now=self.clock.now())
        self.doorbell.ring()


def default_deliverers(
    settings: RuntimeSettings, sessions: async_sessionmaker[AsyncSession], clock: Clock
) -> dict[str, Deliverer]:
    """Every installed channel, built-in or plugin (see ``runtime.messaging.channels``)."""
    from runtime.messaging.channels import installed_deliverers

    return installed_deliverers(settings, sessions, clock)


def build_runtime(
    settings: RuntimeSettings,
    *,
    sessions: async_sessionmaker[AsyncSession],
    registry: NodeRegistry | None = None,
    clock: Clock | None = None,
    doorbell: Doorbell | None = None,
    deliverers: Mapping[str, Deliverer] | None = None,
) -> Runtime:
    """A Runtime from the caller's settings and sessions: discovered node types, built-in channels.

    Pass ``deliverers`` to add or replace channels (SMS, web content...).
    """
    clock = clock or SystemClock()
    channels = default_deliverers(settings, sessions, clock)
    channels.update(deliverers or {})
    return Runtime(
        sessions=sessions,
        registry=registry if registry is not None else discover(),
        settings=settings,
        clock=clock,
        deliverers=channels,
        services=build_services(
            settings.base_url, settings.resolved_secret_key(), egress_allow=settings.egress_allow
        ),
        doorbell=doorbell or NullDoorbell(),
        lease=timedelta(seconds=settings.lease_seconds),
    )
