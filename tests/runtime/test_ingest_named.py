"""Events for contacts named by email or external id: the look-up folded into the insert.

On PostgreSQL ``track_many`` looks the contacts up and inserts the events in one
statement (``runtime.events.ingest_named``) when every item names an existing
contact; otherwise that statement writes nothing and the usual path creates the
missing contacts. The property test runs random batches both ways (the fold, and
the look-up and insert apart) and compares what is stored and answered.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

import backend.contacts.track as track_module
from backend.contacts.normalize import InvalidValue
from backend.contacts.schemas import TrackIn
from backend.contacts.track import track_many
from backend.models import Contact
from runtime.clock import FakeClock
from runtime.engine import Runtime
from runtime.events import IngestResult
from tests.runtime.conftest import add_contacts
from tests.runtime.test_ingest_batch import _SETTINGS, PG_EXAMPLES, TYPES, _setup, _state

# Who an item names: existing contacts by email or external id, a new address, a clash
# (an unknown external id with an address that belongs to another contact).
NAMES = ("c0", "c1", "c2", "x1", "x2", "c0", "c1", "x1", "new", "clash")


@contextmanager
def _apart() -> Iterator[None]:
    """The look-up and the insert as separate statements, as before the fold."""
    with patch.object(track_module, "named_only", lambda item: False):
        yield


async def _name_contacts(runtime: Runtime, customers: dict[str, Any]) -> dict[str, str]:
    """Addresses the API takes (``.test`` is reserved) and external ids for c1 and c2."""
    emails = {f"c{n}": f"kund{n}@exempel.se" for n in range(3)}
    async with runtime.sessions() as session, session.begin():
        for n in range(3):
            await session.execute(
                update(Contact)
                .where(Contact.id == customers[f"c{n}"])
                .values(email=emails[f"c{n}"], external_id=f"e{n}" if n else None)
            )
    return emails


def _item(emails: dict[str, str], spec: tuple[str, str, str | None, str | None]) -> TrackIn:
    who, type_, plan, key = spec
    named: dict[str, Any] = {
        "new": {"email": "ny@exempel.se"},
        "clash": {"external_id": "okänd", "email": emails["c0"]},
        "x1": {"external_id": "e1"},
        "x2": {"external_id": "e2", "email": "ignored-for-lookup@exempel.se"},
    }.get(who) or {"email": emails[who]}
    properties = {"plan": plan} if plan else {}
    return TrackIn(type=type_, properties=properties, idempotency_key=key, **named)


def _answers(results: list[IngestResult | InvalidValue], ranks: Any) -> list[tuple[Any, ...]]:
    e_rank, j_rank = ranks
    out: list[tuple[Any, ...]] = []
    for r in results:
        if isinstance(r, InvalidValue):
            out.append(("refused", r.field, r.message))
        else:
            js = [tuple(j_rank[i] for i in ids) for ids in (r.enrolled, r.woken, r.goals)]
            out.append((e_rank[r.event_id], r.duplicate, *js))
    return out


async def _run(
    runtime: Runtime, engine: AsyncEngine, clock: FakeClock, specs: list[Any], *, fold: bool
) -> tuple[Any, Any]:
    customers = await _setup(runtime, engine, clock)
    emails = await _name_contacts(runtime, customers)
    items = [_item(emails, s) for s in specs]
    async with runtime.sessions() as session, session.begin():
        if fold:
            results = await track_many(session, runtime, items, source="api:t", now=clock.now())
        else:
            with _apart():
                results = await track_many(session, runtime, items, source="api:t", now=clock.now())
    state, ranks = await _state(runtime)
    return _answers(results, ranks), state


@settings(max_examples=PG_EXAMPLES, **_SETTINGS)
@given(
    specs=st.lists(
        st.tuples(
            st.sampled_from(NAMES),
            st.sampled_from(TYPES),
            st.sampled_from([None, "a", "b"]),
            st.sampled_from([None, None, "k1", "k2"]),
        ),
        min_size=1,
        max_size=10,
    )
)
async def test_the_folded_look_up_stores_what_the_look_up_apart_stores(
    runtime: Runtime, engine: AsyncEngine, clock: FakeClock, specs: list[Any]
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the fold is PostgreSQL's; SQLite looks contacts up apart")
    folded = await _run(runtime, engine, clock, specs, fold=True)
    apart = await _run(runtime, engine, clock, specs, fold=False)
    assert folded == apart


async def test_an_event_for_a_known_contact_is_one_statement(
    runtime: Runtime, engine: AsyncEngine
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the fold is PostgreSQL's")
    [contact] = await add_contacts(runtime, 1)
    email = "kund@exempel.se"
    async with runtime.sessions() as session, session.begin():
        await session.execute(update(Contact).where(Contact.id == contact).values(email=email))
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        async with runtime.sessions() as session, session.begin():
            [result] = await track_many(
                session, runtime, [TrackIn(type="page.viewed", email=email)], source="api:t"
            )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert isinstance(result, IngestResult) and not result.duplicate
    assert len(statements) == 1, statements  # look-up and insert together, no journeys read
    async with runtime.sessions() as session:
        stored = await session.scalar(select(Contact.id).where(Contact.email == email))
    assert stored == contact
