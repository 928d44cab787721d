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

A caller that goes away (the client disconnected) does not stop the write;
its event is stored as if the answer had been read.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.contacts.normalize import InvalidValue
from backend.contacts.schemas import TrackIn
from backend.contacts.track import EventRuntime, _check, _named, _named_only, track_many
from backend.models import utcnow
from runtime.events import IngestResult, QuietIngest

log = logging.getLogger(__name__)

# Transactions in flight at once: one is in Python while the other waits on the database.
MAX_IN_FLIGHT = 2
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
        self._tasks: set[asyncio.Task[None]] = set()

    async def track(self, data: TrackIn, *, source: str) -> IngestResult | InvalidValue:
        """Store one event with whatever else is waiting; its result or its own error."""
        call = _Call(data, source)
        self._queue.append(call)
        if self._in_flight < MAX_IN_FLIGHT:
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # Shielded: a caller that goes away leaves its item in the group.
        return await asyncio.shield(call.answer)

    async def _drain(self) -> None:
        try:
            while self._queue:
                group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
                await self._write(group)
        finally:
            self._in_flight -= 1

    async def _write(self, group: list[_Call]) -> None:
        self.transactions += 1
        if self._quiet is not None:
            try:
                quietly = await self._store_quietly(group)
            except Exception as exc:
                # Stored or not, nobody knows (the connection broke): never written twice.
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
                await self._write([call])
            return
        for call, result in zip(group, results, strict=True):
            if not call.answer.done():
                call.answer.set_result(result)

    async def _store_quietly(self, group: list[_Call]) -> list[IngestResult] | None:
        """The group in one autocommit statement (``QuietIngest``) when that is the whole
        of its ingestion; None when nothing was written and the group needs a transaction."""
        assert self._quiet is not None and self._engine is not None
        emails: dict[str, str] = {}
        items = []
        for call in group:
            try:
                item = _check(call.data, emails)
            except InvalidValue:
                return None  # ``track_many`` answers it, in the language it answers in
            if not _named_only(item):
                return None
            items.append(_named(item, call.source))
        async with self._engine.connect() as connection:
            raw = await connection.get_raw_connection()
            try:
                return await self._quiet.store(raw.driver_connection, items, now=utcnow())
            except BaseException:
                # The connection may be mid-statement: the pool must not hand it out again.
                await connection.invalidate()
                raise

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


def _answer_error(call: _Call, exc: Exception) -> None:
    if not call.answer.done():
        call.answer.set_exception(exc)
