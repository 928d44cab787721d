"""The journal's fast JSON encoding: only for plain values, which it encodes as json.dumps does.

Issue 15: ``json.dumps`` took about 4.6 µs of a worker's 46 µs per step.
``msgspec`` is ten times faster but encodes what ``json.dumps`` (and a JSON
column) refuses: a set, a date, NaN. So a walk notes whether everything it
will write is plain JSON, and only such batches take the fast path; a step
whose output is not plain fails to be stored exactly as before
(test_failures.py's poisoned step, and the date below).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest

from nodes.sdk import Context, EmptyConfig, Family, NodeType, Outcome, Wait
from nodes.sdk.types import EventWait
from runtime.bulk_insert import json_rows, plain_json
from runtime.clock import FakeClock
from runtime.engine import Runtime
from runtime.walk import Walk
from tests.runtime.conftest import add_contacts, journeys, publish, steps
from tests.runtime.nodes import graph


class Dated(NodeType[EmptyConfig]):
    """Puts a date (not JSON) in the journey's data."""

    type_id = "test.dated"
    name = "Test dated"
    family = Family.action

    async def run(self, ctx: Context[EmptyConfig]) -> Outcome:
        return Outcome.go(data={"at": ctx.now})


class _Color(StrEnum):
    red = "red"


PLAIN: list[Any] = [
    None,
    True,
    0,
    -(2**70),
    2**70,
    1.5,
    -0.0,
    1e300,
    "",
    'réussi ☃ \u0000 "quoted" \\ \n',
    [],
    (),
    {},
    {"a": [1, {"b": (None, 2.25)}], "c": {"d": "e"}},
]
NOT_PLAIN: list[Any] = [
    {1, 2},
    frozenset(),
    datetime(2026, 1, 1, tzinfo=UTC),
    float("nan"),
    float("inf"),
    {1: "int key"},
    {"nested": {"set": {1}}},
    [datetime(2026, 1, 1, tzinfo=UTC)],
    _Color.red,
    MappingProxyType({"a": 1}),
    b"bytes",
]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_values_encode_as_json_dumps_encodes_them(value: Any) -> None:
    assert plain_json(value)
    rows = [[1, value, "x"], [2, {"v": value}, None]]
    assert json.loads(json_rows(rows, plain=True)) == json.loads(json_rows(rows))


@pytest.mark.parametrize("value", NOT_PLAIN, ids=repr)
def test_anything_else_is_not_plain(value: Any) -> None:
    assert not plain_json(value)


def _walk(data: dict[str, Any]) -> Walk:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    row = SimpleNamespace(
        id=1,
        contact_id=1,
        flow_id=1,
        flow_version_id=1,
        entered_at=now,
        node_id="a",
        visits={"a": 1},
        data=data,
        status="active",
        attempts=0,
        waiting_since=None,
    )
    flow: Any = SimpleNamespace(nodes={})
    return Walk(row=row, flow=flow, key=("contact", "1"), profile=None, now=now)


def test_a_walk_is_plain_until_a_node_returns_something_that_is_not() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    walk = _walk({"plan": "pro"})
    walk.record("a", "t", 1, Outcome.go(data={"n": 1}), now, 0.1, {"profile": {"x": 1}})
    park = Outcome.park(Wait(until=now, event=EventWait("app.opened", {"plan": "pro"})))
    walk.record("b", "t", 1, park, now, 0.1)
    assert walk.plain
    walk.record("c", "t", 1, Outcome.go(data={"at": now}), now, 0.1)
    assert not walk.plain
    assert not _walk({"n": float("nan")}).plain
    failed = _walk({})
    failed.fail_or_retry("boom", 1, now, 5, seen={"profile": {"tags": {"a"}}})
    assert not failed.plain


async def test_a_step_with_a_date_in_its_data_is_still_not_stored(
    runtime: Runtime, clock: FakeClock
) -> None:
    """As a JSON column refuses it: the fast encoding would have written it as text."""
    runtime.registry.add(Dated)
    [contact] = await add_contacts(runtime, 1)
    await publish(
        runtime,
        graph(
            [
                ("t", "test.trigger", {"event_type": "signed.up"}),
                ("d", "test.dated", {}),
            ],
            [("t", "next", "d")],
        ),
    )
    await runtime.ingest("signed.up", contact_id=contact)
    await runtime.drain()
    [journey] = await journeys(runtime)
    assert (journey.status, journey.node_id, journey.attempts) == ("active", "t", 1)
    assert journey.last_error is not None
    assert journey.last_error.startswith("could not record the step")
    assert await steps(runtime, journey.id) == []
