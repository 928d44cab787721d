"""Group commit for single track calls: concurrent requests share one transaction.

A single ``POST /api/v1/track`` used to pay a whole transaction (begin,
five statements, commit and its disk flush) for one event. ``TrackIntake``
collects the calls that arrive while a transaction is in flight and writes
them together through ``track_many``, the same path as a batch, then answers
each caller:

- nothing is acknowledged before it is durable: a caller's answer is set
  after the commit that stored its event;
- a bad item fails alone: ``track_many`` reports it on its own, and when the
  shared transaction fails as a whole, its items are written again one
  transaction each, so only the item that cannot be written gets the error;
- a quiet server adds no delay: the first call starts a transaction at once;
  calls arriving meanwhile wait for it and go in the next one.

On PostgreSQL a group that starts no flow and ends no wait is one autocommit
statement (``runtime.events.QuietIngest``) on a connection the draining task
keeps while calls keep coming; any other group takes a transaction. When the
statement's outcome is unknown (the connection broke, a FATAL error), the
group's callers get the error and nothing is written again.

A caller that goes away (the client disconnected) does not stop the write;
its event is stored as if the answer had been read.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from backend.contacts.normalize import InvalidValue
from backend.contacts.schemas import TrackIn
from backend.contacts.track import EventRuntime, as_named, check_item, named_only, track_many
from backend.models import utcnow
from runtime.events import IngestResult, QuietIngest

log = logging.getLogger(__name__)

# Groups in flight at once: one is in Python while the others wait on the database.
# Three since a quiet group's statement became a few index probes (well under a
# millisecond of server time): with two, 8 callers waited on whichever of two
# statements a busy machine was slow to schedule. (Four were tried on PostgreSQL:
# smaller groups, more CPU per call, fewer calls a second.)
MAX_IN_FLIGHT = 3
# PostgreSQL: how long a draining task with nothing to write keeps its connection for
# the next call (under load one comes within a millisecond or two).
LINGER_SECONDS = 0.05
# Items per shared transaction; a longer queue is split.
MAX_GROUP = 500


@dataclass
class _Call:
    data: TrackIn
    source: str
    answer: asyncio.Future[IngestResult | InvalidValue] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class TrackIntake:
    """Single track calls of one process, written in shared transactions."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], runtime: EventRuntime) -> None:
        self.sessions = sessions
        self.runtime = runtime
        self.transactions = 0  # groups written (or tried), for tests and benches
        engine = sessions.kw.get("bind")
        # PostgreSQL: a group that starts no flow and ends no wait is one statement.
        self._engine: AsyncEngine | None = None
        self._quiet: QuietIngest | None = None
        if isinstance(engine, AsyncEngine) and engine.dialect.name == "postgresql":
            self._engine = engine
            self._quiet = QuietIngest(runtime.versions)
        self._queue: list[_Call] = []
        self._in_flight = 0
        self._idle: list[asyncio.Future[bool]] = []  # draining tasks waiting for calls
        self._tasks: set[asyncio.Task[None]] = set()

    async def track(self, data: TrackIn, *, source: str) -> IngestResult | InvalidValue:
        """Store one event with whatever else is waiting; its result or its own error."""
        call = _Call(data, source)
        self._queue.append(call)
        if not self._wake_one() and self._in_flight < MAX_IN_FLIGHT:
            self._start_draining()
        # Shielded: a caller that goes away leaves its item in the group.
        return await asyncio.shield(call.answer)

    def _wake_one(self) -> bool:
        """Hand the queue to a draining task that waits for calls, if one does."""
        while self._idle:
            waiter = self._idle.pop()
            if not waiter.done():  # (a cancelled one is gone)
                waiter.set_result(True)
                return True
        return False

    def _start_draining(self) -> None:
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(self._drain())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        lane = _Lane(self._engine)
        failed = False
        try:
            while True:
                while self._queue:
                    group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
                    await self._write(group, lane)
                if not lane.held or not await self._more_calls():
                    break
        except BaseException:  # cancelled mid-statement, say
            failed = True
            raise
        finally:
            # No await since the queue was last found empty (or this task failed):
            # calls queued from here on start a draining task of their own.
            self._in_flight -= 1
            if self._queue and self._in_flight < MAX_IN_FLIGHT:
                self._start_draining()
            await (lane.broke() if failed else lane.release())

    async def _more_calls(self) -> bool:
        """Wait a little for another call (``LINGER_SECONDS``), keeping the connection."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._idle.append(waiter)
        timer = loop.call_later(LINGER_SECONDS, self._stop_waiting, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            if waiter in self._idle:
                self._idle.remove(waiter)
        return bool(self._queue)

    def _stop_waiting(self, waiter: asyncio.Future[bool]) -> None:
        if waiter in self._idle:
            self._idle.remove(waiter)
        if not waiter.done():
            waiter.set_result(False)

    async def _write(self, group: list[_Call], lane: _Lane) -> None:
        self.transactions += 1
        if self._quiet is not None:
            try:
                quietly = await self._store_quietly(group, lane)
            except Exception as exc:
                # Stored or not, nobody knows (the connection broke): never written twice.
                await lane.broke()
                for call in group:
                    _answer_error(call, exc)
                return
            if quietly is not None:
                for call, stored in zip(group, quietly, strict=True):
                    if not call.answer.done():
                        call.answer.set_result(stored)
                return
        try:
            results = await self._transaction(group)
        except Exception as exc:
            if len(group) == 1:
                _answer_error(group[0], exc)
                return
            log.warning("a shared track transaction failed; its %d items go alone", len(group))
            for call in group:
                await self._write([call], lane)
            return
        for call, result in zip(group, results, strict=True):
            if not call.answer.done():
                call.answer.set_result(result)

    async def _store_quietly(self, group: list[_Call], lane: _Lane) -> list[IngestResult] | None:
        """The group in one autocommit statement (``QuietIngest``) when that is the whole
        of its ingestion; None when nothing was written and the group needs a transaction."""
        assert self._quiet is not None
        emails: dict[str, str] = {}
        items = []
        for call in group:
            try:
                item = check_item(call.data, emails)
            except InvalidValue:
                return None  # ``track_many`` answers it, in the language it answers in
            if not named_only(item):
                return None
            items.append(as_named(item, call.source))
        connection = await lane.connection()
        if connection is None:
            return None
        return await self._quiet.store(connection, items, now=utcnow())

    async def _transaction(self, group: list[_Call]) -> list[IngestResult | InvalidValue]:
        """One transaction for the group; items of one source go through ``track_many`` together."""
        by_source: dict[str, list[int]] = {}
        for index, call in enumerate(group):
            by_source.setdefault(call.source, []).append(index)
        results: dict[int, IngestResult | InvalidValue] = {}
        async with self.sessions() as session, session.begin():
            for source, indexes in by_source.items():
                stored = await track_many(
                    session, self.runtime, [group[i].data for i in indexes], source=source
                )
                for index, result in zip(indexes, stored, strict=True):
                    results[index] = result
        return [results[index] for index in range(len(group))]


class _Lane:
    """A draining task's PostgreSQL connection, outside any transaction, for its quiet groups.

    Taken from the engine's pool at the first quiet group and kept while the
    queue has calls (one checkout per run of groups, not per group), then
    given back. A connection that broke is thrown away (the pool opens
    another); if none can be had, the groups take the transaction path,
    which answers the error.
    """

    def __init__(self, engine: AsyncEngine | None) -> None:
        self._engine = engine
        self._fairy: PoolProxiedConnection | None = None

    @property
    def held(self) -> bool:
        """Whether it holds a connection (worth keeping for the next group)."""
        return self._fairy is not None

    async def connection(self) -> Any:
        """The driver's connection (asyncpg's), or None when there is none to be had."""
        for _attempt in range(2):
            if self._fairy is not None and _closed(self._fairy):
                await self.broke()  # the server or the network ended it while in the pool
            if self._fairy is None and self._engine is not None:
                try:
                    self._fairy = await self._engine.raw_connection()
                except Exception:
                    log.warning("no connection for quiet track groups", exc_info=True)
                    self._engine = None  # not again in this run
                    return None
        if self._fairy is None or _closed(self._fairy):
            return None
        return self._fairy.driver_connection

    async def broke(self) -> None:
        """The connection failed mid-statement: the pool must not hand it out again."""
        if self._fairy is not None:
            fairy, self._fairy = self._fairy, None
            await greenlet_spawn(fairy.invalidate)
            await greenlet_spawn(fairy.close)

    async def release(self) -> None:
        if self._fairy is not None:
            if _closed(self._fairy):  # the server ended it (a shutdown)
                await self.broke()
                return
            fairy, self._fairy = self._fairy, None
            await greenlet_spawn(fairy.close)


def _closed(fairy: PoolProxiedConnection) -> bool:
    driver = fairy.driver_connection
    return driver is None or bool(driver.is_closed())


def _answer_error(call: _Call, exc: Exception) -> None:
    if not call.answer.done():
        call.answer.set_exception(exc)
