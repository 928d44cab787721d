"""The engine's fast paths give what the slow ways they replace give.

Each shortcut on the step hot path (outcomes made without the dataclass's
``__init__``, JSON columns decoded by ``msgspec``, UTC timestamps handed to
``msgspec`` as they are, exit rules and goal labels worked out once per
version) is checked here against the plain way of doing the same thing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from nodes.sdk import EventWait, Outcome, Profile, Wait
from nodes.sdk.types import ContactChanges, Message
from runtime.bulk_insert import json_rows, json_rows_select, json_stamp
from runtime.db import json_loads
from runtime.graph import FlowSettings
from runtime.journal import _utc_stamp
from runtime.profiles import claimed_profile
from runtime.sql import STEPS
from runtime.versions import CompiledFlow, CompiledNode

# -- outcomes ---------------------------------------------------------------------------------


def test_outcome_class_methods_make_what_the_constructor_makes() -> None:
    wait = Wait(until=datetime(2030, 1, 1, tzinfo=UTC), event=EventWait("opened", {"a": 1}))
    message = Message("email", {"subject": "hi"})
    changes = ContactChanges(set_attributes={"vip": True})
    pairs = [
        (Outcome.go(), Outcome(port="next")),
        (
            Outcome.go("yes", messages=(message,), changes=changes, data={"x": 1}),
            Outcome(port="yes", messages=(message,), changes=changes, data={"x": 1}),
        ),
        (Outcome.park(wait), Outcome(wait=wait)),
        (Outcome.park(wait, messages=(message,)), Outcome(wait=wait, messages=(message,))),
        (Outcome.finish("done"), Outcome(end="completed", reason="done")),
        (
            Outcome.finish("bye", exited=True, changes=changes),
            Outcome(end="exited", reason="bye", changes=changes),
        ),
    ]
    for fast, slow in pairs:
        assert fast == slow
        assert vars(fast) == vars(slow)
        with pytest.raises(AttributeError):
            fast.port = "other"  # type: ignore[misc]  # still frozen


def test_outcome_class_methods_still_refuse_what_the_constructor_refuses() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Outcome.go(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exactly one"):
        Outcome.park(None)  # type: ignore[arg-type]


def test_an_outcome_subclass_goes_through_its_own_constructor() -> None:
    @dataclass(frozen=True)
    class Checked(Outcome):
        def __post_init__(self) -> None:
            super().__post_init__()
            if self.port == "forbidden":
                raise ValueError("not that port")

    made = Checked.go("yes")
    assert type(made) is Checked and made.port == "yes"
    with pytest.raises(ValueError, match="not that port"):
        Checked.go("forbidden")


# -- JSON column values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "{}",
        "[]",
        "null",
        '{"a": 1, "b": [1, 2.5, "x", null, true, false], "c": {"d": "é☃"}}',
        '{"a": 1, "a": 2}',
        "123456789012345678901234567890",
        "-0",
        "1E2",
        "0.1",
        "1e400",  # jsonb keeps it; json.loads reads inf
        '"\\ud83d\\ude00"',
        '"\\u0000"',
        '{"deep": ' * 40 + "1" + "}" * 40,
    ],
)
def test_json_loads_reads_what_json_loads_reads(raw: str) -> None:
    fast, slow = json_loads(raw), json.loads(raw)
    assert fast == slow or (math.isinf(fast) and math.isinf(slow))
    assert type(fast) is type(slow)


def test_json_loads_refuses_what_json_loads_refuses() -> None:
    for raw in ("", "{", "[1,]", "nan"):
        with pytest.raises(ValueError):
            json_loads(raw)


# -- timestamps in the journal's rows ---------------------------------------------------------


def test_only_utc_times_travel_as_they_are() -> None:
    now = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    assert _utc_stamp(None) is None
    assert _utc_stamp(now) is now
    naive = now.replace(tzinfo=None)
    assert _utc_stamp(naive) == json_stamp(naive)
    odd = now.astimezone(timezone(timedelta(hours=5, minutes=30, seconds=10)))
    assert _utc_stamp(odd) == json_stamp(odd)


async def test_step_rows_store_the_same_times_either_way(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A batch of plain rows (``msgspec``, UTC times as they are) and one of others
    (``json.dumps``, every time as text) read back as the same instants."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite writes with executemany")
    times = [
        datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2030, 7, 1, 12, 0, tzinfo=ZoneInfo("Europe/Paris")),
        datetime(2030, 1, 2, 3, 4, 5, 1),  # naive: UTC
        datetime(1890, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=53, seconds=28))),
    ]
    columns = ("journey_id", "started_at", "finished_at")
    sql = text(
        f"SELECT v.started_at, v.finished_at FROM ({json_rows_select(STEPS, columns)}"  # noqa: S608
        " ORDER BY r.at) AS v"
    )
    read = []
    for plain, stamp in ((True, _utc_stamp), (False, json_stamp)):
        rows = [[1, stamp(t), stamp(None)] for t in times]
        async with sessions() as session:
            read.append((await session.execute(sql, {"rows": json_rows(rows, plain=plain)})).all())
    expected = [(t if t.tzinfo else t.replace(tzinfo=UTC), None) for t in times]
    assert [tuple(r) for r in read[0]] == [tuple(r) for r in read[1]] == expected


# -- per-version answers ----------------------------------------------------------------------


def _flow(exit_on: list[str], transactional_ahead: frozenset[str]) -> CompiledFlow:
    node = CompiledNode("a", "t", None, None, frozenset(), None, None)
    return CompiledFlow(
        version_id=1,
        flow_id=1,
        settings=FlowSettings.model_validate({"exit_on": exit_on}),
        nodes={"a": node, "b": node},
        routes={},
        transactional_ahead=transactional_ahead,
    )


def test_exit_rules_leave_out_unsubscribed_only_where_it_cannot_apply() -> None:
    flow = _flow(["unsubscribed"], frozenset({"b"}))
    for _ in range(2):  # worked out once, then read from the cache: the same answers
        assert flow.exit_rules("a") == ("unsubscribed",)
        assert flow.exit_rules("a", unsubscribed=True) == ("unsubscribed",)
        assert flow.exit_rules("a", unsubscribed=False) == ()
        assert flow.exit_rules("b") == ()
    assert _flow([], frozenset()).exit_rules("a") == ()


def test_event_nodes_are_the_nodes_whose_type_reads_events() -> None:
    reads = CompiledNode("r", "t", None, None, frozenset(), None, None, needs_events=True)
    plain = CompiledNode("p", "t", None, None, frozenset(), None, None)
    flow = _flow([], frozenset())
    flow = CompiledFlow(
        version_id=1,
        flow_id=1,
        settings=flow.settings,
        nodes={"r": reads, "p": plain},
        routes={},
    )
    assert flow.event_nodes == {"r"}


# -- claimed customers ------------------------------------------------------------------------


def test_a_claimed_contact_profile_is_the_one_the_constructor_makes() -> None:
    row = SimpleNamespace(
        c_id=42,
        c_email="a@example.test",
        c_phone=None,
        c_first_name="Ada",
        c_last_name="",
        c_attributes={"vip": True},
        c_tags=["x", "y"],
        c_lifecycle_stage="lead",
        c_timezone=None,
        c_consent=None,
        c_owner_id=7,
        v_id=None,
        v_traits=None,
    )
    made = claimed_profile(row)
    expected = Profile(
        kind="contact",
        id="42",
        email="a@example.test",
        first_name="Ada",
        attributes={"vip": True},
        tags=("x", "y"),
        lifecycle_stage="lead",
        consent={},
        owner_id=7,
    )
    assert made == expected
    assert made is not None and vars(made) == vars(expected) and made.contact_id == 42
    with pytest.raises(AttributeError):
        made.email = "b@example.test"  # type: ignore[misc]  # still frozen
