"""Single track calls that start no flow and end no wait: one autocommit statement per group.

On PostgreSQL ``TrackIntake`` writes such a group with ``QuietIngest`` (the
contact look-up and the insert, outside a transaction) and takes the
transaction path whenever a flow may react, a contact is missing, or the
server refuses the statement. These tests hold it to the transaction path's
answers: each caller its own event, idempotency keys honoured within a
group, across groups and across processes, flows enrolling and waits
ending as before, and a group whose outcome is unknown (the connection
broke) answered with the error and never written again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.contacts.intake import LINGER_SECONDS, TrackIntake
from backend.contacts.schemas import TrackIn
from backend.db import create_engine, create_sessionmaker
from backend.models import Event
from runtime.engine import Runtime
from runtime.events import IngestResult
from tests.runtime.conftest import publish
from tests.runtime.nodes import graph


@pytest.fixture(autouse=True)
def _postgresql_only(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the one-statement path is PostgreSQL's; SQLite always takes a transaction")


def _item(n: int, type_: str = "page.viewed", **extra: Any) -> TrackIn:
    return TrackIn.model_validate(
        {"type": type_, "email": f"kund{n}@exempel.se", "properties": {"n": n}, **extra}
    )


@contextmanager
def _counting_commits(engine: AsyncEngine) -> Iterator[list[int]]:
    """Transactions committed through SQLAlchemy meanwhile (the quiet path commits none)."""
    commits: list[int] = []

    def count(_conn: Any) -> None:
        commits.append(1)

    event.listen(engine.sync_engine, "commit", count)
    try:
        yield commits
    finally:
        event.remove(engine.sync_engine, "commit", count)


async def _known(intake: TrackIntake, *numbers: int) -> None:
    """Create the contacts (the first event of someone new takes the transaction path)."""
    for n in numbers:
        result = await intake.track(_item(n, "signed.in"), source="api:shop")
        assert isinstance(result, IngestResult)


async def _events(engine: AsyncEngine, type_: str = "page.viewed") -> list[tuple[int, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(Event.id, Event.properties["n"].as_integer())
            .where(Event.type == type_)
            .order_by(Event.id)
        )
        return [tuple(row) for row in rows]


async def test_a_quiet_group_is_one_statement_and_each_caller_gets_its_event(
    runtime: Runtime, engine: AsyncEngine
) -> None:
    intake = TrackIntake(runtime.sessions, runtime)
    await _known(intake, *range(10))
    groups = intake.transactions
    with _counting_commits(engine) as commits:
        outcomes = await asyncio.gather(
            *(intake.track(_item(n), source="api:shop") for n in range(10))
        )
    assert (intake.transactions - groups, len(commits)) == (1, 0)
    stored = await _events(engine)
    assert sorted(n for _id, n in stored) == list(range(10))
    by_id = dict(stored)
    assert all(isinstance(o, IngestResult) and not o.duplicate for o in outcomes)
    assert [by_id[o.event_id] for o in outcomes if isinstance(o, IngestResult)] == list(range(10))


async def test_idempotency_keys_hold_within_a_group_across_groups_and_across_intakes(
    runtime: Runtime, engine: AsyncEngine
) -> None:
    intake, other = TrackIntake(runtime.sessions, runtime), TrackIntake(runtime.sessions, runtime)
    await _known(intake, 1, 2)
    same = [_item(1, idempotency_key="k1"), _item(2), _item(1, idempotency_key="k1")]
    # Two processes' intakes at once, with the same key: PostgreSQL settles it.
    outcomes = await asyncio.gather(
        *(intake.track(item, source="api:shop") for item in same),
        *(other.track(_item(1, idempotency_key="k1"), source="api:shop") for _ in range(3)),
    )
    again = await intake.track(_item(1, idempotency_key="k1"), source="api:shop")
    results = [o for o in [*outcomes, again] if isinstance(o, IngestResult)]
    assert len(results) == 7
    keyed = [results[i] for i in (0, 2, 3, 4, 5, 6)]
    assert len({r.event_id for r in keyed}) == 1  # one event for the key, every caller told so
    assert sum(not r.duplicate for r in keyed) == 1
    assert again.duplicate  # type: ignore[union-attr]
    assert [n for _id, n in await _events(engine)] == [1, 2]


async def test_a_flow_that_starts_on_the_type_enrolls_as_before_and_other_types_stay_quiet(
    runtime: Runtime, engine: AsyncEngine
) -> None:
    intake = TrackIntake(runtime.sessions, runtime)
    await _known(intake, 1, 2)
    flow_graph = graph(
        [
            ("t", "test.trigger", {"event_type": "trial.started"}),
            ("m", "test.email", {"subject": "Welcome"}),
        ],
        [("t", "next", "m")],
    )
    await publish(runtime, flow_graph, "Trial")
    started = await intake.track(_item(1, "trial.started"), source="api:shop")
    assert isinstance(started, IngestResult) and len(started.enrolled) == 1
    # The flow is known now, and it does not start on page views: those stay one statement.
    with _counting_commits(engine) as commits:
        viewed = await intake.track(_item(2), source="api:shop")
    assert isinstance(viewed, IngestResult) and len(commits) == 0
    # Kund 1 has a live journey (goals may be met): that event takes the transaction.
    with _counting_commits(engine) as commits:
        assert isinstance(await intake.track(_item(1), source="api:shop"), IngestResult)
    assert len(commits) == 1


async def test_a_waiting_journey_wakes_on_its_event(runtime: Runtime, engine: AsyncEngine) -> None:
    intake = TrackIntake(runtime.sessions, runtime)
    await _known(intake, 1)
    waits = graph(
        [
            ("t", "test.trigger", {"event_type": "trial.started"}),
            ("w", "test.wait_event", {"event_type": "app.opened", "timeout_hours": 48}),
            ("m", "test.email", {"subject": "Opened"}),
        ],
        [("t", "next", "w"), ("w", "event", "m"), ("w", "timeout", "m")],
    )
    await publish(runtime, waits, "Wait")
    assert isinstance(
        await intake.track(_item(1, "trial.started"), source="api:shop"), IngestResult
    )
    await runtime.drain()  # the journey moves on to its wait
    opened = await intake.track(_item(1, "app.opened"), source="api:shop")
    assert isinstance(opened, IngestResult) and len(opened.woken) == 1


@asynccontextmanager
async def _events_trigger(engine: AsyncEngine, body: str) -> AsyncIterator[None]:
    """A trigger on events running ``body`` (PL/pgSQL) for rows marked ``{"mark": ...}``."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION test_quiet_mark() RETURNS trigger LANGUAGE plpgsql AS $$ "
                f"BEGIN IF NEW.properties ? 'mark' THEN {body} END IF; RETURN NEW; END $$"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER test_quiet_mark BEFORE INSERT ON events "
                "FOR EACH ROW EXECUTE FUNCTION test_quiet_mark()"
            )
        )
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER test_quiet_mark ON events"))
            await conn.execute(text("DROP FUNCTION test_quiet_mark()"))


async def test_a_group_the_server_refuses_is_written_once_with_only_the_bad_item_failing(
    runtime: Runtime, engine: AsyncEngine
) -> None:
    intake = TrackIntake(runtime.sessions, runtime)
    await _known(intake, 1, 2, 3)
    items = [_item(1), _item(2, properties={"n": 2, "mark": "refuse"}), _item(3)]
    async with _events_trigger(engine, "RAISE EXCEPTION 'refused row';"):
        outcomes = await asyncio.gather(
            *(intake.track(item, source="api:shop") for item in items), return_exceptions=True
        )
    assert isinstance(outcomes[1], Exception) and "refused row" in str(outcomes[1])
    assert isinstance(outcomes[0], IngestResult) and isinstance(outcomes[2], IngestResult)
    assert [n for _id, n in await _events(engine)] == [1, 3]  # each once


async def test_a_group_whose_backend_is_terminated_is_answered_with_the_error(
    runtime: Runtime, engine: AsyncEngine
) -> None:
    intake = TrackIntake(runtime.sessions, runtime)
    await _known(intake, 1, 2)
    items = [_item(1, properties={"n": 1, "mark": "slow"}), _item(2)]
    async with _events_trigger(engine, "PERFORM pg_sleep(1);"):
        calls = asyncio.gather(
            *(intake.track(item, source="api:shop") for item in items), return_exceptions=True
        )
        assert await _terminate_sleeper(engine) == 1
        outcomes = await calls
    # A FATAL error may come after a commit: the callers get it, nothing is written again.
    assert all(isinstance(o, Exception) for o in outcomes), outcomes
    assert await _events(engine) == []  # (here the server had ended the statement)
    # The pool did not get the dead connection back: the next group is written.
    assert isinstance(await intake.track(_item(2), source="api:shop"), IngestResult)
    assert [n for _id, n in await _events(engine)] == [2]


async def _terminate_sleeper(engine: AsyncEngine) -> int:
    """End the backend asleep in the trigger: of this test database only, never another's."""
    for _ in range(200):  # until the statement runs (asleep in the trigger)
        async with engine.connect() as admin:  # a fresh look at pg_stat_activity each time
            killed = int(
                await admin.scalar(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event = 'PgSleep' "
                        "AND query LIKE '%jsonb_array_elements%'"
                    )
                )
                or 0
            )
        if killed:
            return killed
        await asyncio.sleep(0.05)
    return 0


class _Proxy:
    """A TCP relay to PostgreSQL that can drop its connections without a word to either side."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writers += [writer, up_writer]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def cut(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


async def test_a_group_whose_connection_breaks_is_answered_with_the_error_and_not_rewritten(
    runtime: Runtime, engine: AsyncEngine
) -> None:
    proxy = _Proxy(engine.url.port or 5432)
    through = create_engine(
        engine.url.set(port=await proxy.start()).render_as_string(hide_password=False)
    )
    try:
        intake = TrackIntake(create_sessionmaker(through), runtime)
        await _known(intake, 1, 2)
        items = [_item(1, properties={"n": 1, "mark": "slow"}), _item(2)]
        async with _events_trigger(engine, "PERFORM pg_sleep(1);"):
            calls = asyncio.gather(
                *(intake.track(item, source="api:shop") for item in items), return_exceptions=True
            )
            while not await _sleeping(engine):
                await asyncio.sleep(0.05)
            proxy.cut()  # the statement runs on; whether it commits, the intake cannot know
            outcomes = await calls
            while await _sleeping(engine):
                await asyncio.sleep(0.05)
        # Every caller gets the error, and the group is not written a second time
        # (here the statement did commit: the server finished it).
        assert all(isinstance(o, Exception) for o in outcomes), outcomes
        assert [n for _id, n in await _events(engine)] == [1, 2]
        # The broken connection was thrown away: the next group is written.
        assert isinstance(await intake.track(_item(2), source="api:shop"), IngestResult)
        assert [n for _id, n in await _events(engine)] == [1, 2, 2]
    finally:
        await through.dispose()
        await proxy.close()


async def _sleeping(engine: AsyncEngine) -> bool:
    async with engine.connect() as admin:
        return bool(
            await admin.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event = 'PgSleep'"
                )
            )
        )


async def test_calls_one_after_another_share_a_connection_which_goes_back_when_quiet(
    runtime: Runtime, engine: AsyncEngine
) -> None:
    intake = TrackIntake(runtime.sessions, runtime)
    await _known(intake, *range(5))
    await asyncio.sleep(LINGER_SECONDS * 4)
    checkouts: list[int] = []

    def count(*_args: Any) -> None:
        checkouts.append(1)

    event.listen(engine.sync_engine, "checkout", count)
    try:
        for n in range(5):  # the next call comes before the draining task gives up its connection
            assert isinstance(await intake.track(_item(n), source="api:shop"), IngestResult)
    finally:
        event.remove(engine.sync_engine, "checkout", count)
    assert len(checkouts) == 1
    assert engine.pool.checkedout() >= 1  # type: ignore[attr-defined]
    await asyncio.sleep(LINGER_SECONDS * 4)
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert [n for _id, n in await _events(engine)] == list(range(5))
