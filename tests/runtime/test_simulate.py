"""Simulation: a customer's path through a graph in simulated time, with nothing sent or saved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from nodes.sdk import EventRecord, Profile, Services
from runtime.simulate import Simulation, simulate
from tests.runtime.nodes import canonical_graph, graph, test_registry

START = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
CUSTOMER = Profile(kind="contact", id="0", email="t@example.test")


def _event(kind: str, hours: float = 0, **properties: Any) -> EventRecord:
    return EventRecord(kind, START + timedelta(hours=hours), properties, id=1, source="test")


async def _walk(
    raw: dict[str, Any], *events: EventRecord, profile: Profile = CUSTOMER, **kw: Any
) -> Simulation:
    return await simulate(
        raw, test_registry(), profile, list(events), start=START, services=Services(), **kw
    )


def _path(run: Simulation) -> list[tuple[str, str]]:
    return [(s.node_id, s.kind) for s in run.steps]


async def test_an_open_of_the_email_ends_the_wait_at_that_moment() -> None:
    opened = _event("email.opened", 5, node_id="confirm")
    run = await _walk(canonical_graph(), _event("form.submitted"), opened)
    assert _path(run) == [
        ("form", "went"),
        ("confirm", "went"),
        ("opened", "waited"),
        ("opened", "went"),
        ("later", "waited"),
        ("later", "went"),
        ("notify", "went"),
    ]
    wait = run.steps[2]
    assert (wait.event, wait.until, wait.waits_for) == (opened, opened.occurred_at, "email.opened")
    assert run.steps[3].port == "event" and run.steps[3].at == opened.occurred_at
    assert run.steps[5].at == opened.occurred_at + timedelta(hours=48)
    assert [m.payload.get("subject") for m in run.steps[1].messages] == ["Your download"]
    assert [m.channel for m in run.steps[6].messages] == ["task"]
    assert run.ending == "went_nowhere"
    assert ("opened", "event") in run.taken and ("opened", "timeout") not in run.taken
    assert run.visited["opened"] == [3, 4]


async def test_without_the_open_the_wait_times_out() -> None:
    run = await _walk(canonical_graph(), _event("form.submitted"))
    assert _path(run)[-1] == ("reminder", "went")
    timed_out = run.steps[2]
    assert (timed_out.event, timed_out.until) == (None, START + timedelta(hours=48))


async def test_an_open_of_another_email_or_journey_does_not_end_the_wait() -> None:
    for other in (
        _event("email.opened", 5, node_id="reminder"),
        _event("email.opened", 5, node_id="confirm", journey_id=99),
        _event("email.opened", 60, node_id="confirm"),  # after the timeout
    ):
        run = await _walk(canonical_graph(), _event("form.submitted"), other)
        assert run.steps[2].event is None and run.steps[3].port == "timeout", other
    # An event that leaves the journey keys out is this customer's own.
    run = await _walk(canonical_graph(), _event("form.submitted"), _event("email.opened", 1))
    assert run.steps[3].port == "event"


async def test_changes_apply_to_the_simulated_profile_only() -> None:
    raw = graph(
        [
            ("t", "test.trigger", {"event_type": "go"}),
            ("tag", "test.tag", {"tag": "vip", "attribute": "vip", "value": True}),
            ("if", "test.condition", {"attribute": "vip"}),
            ("end", "test.end", {"reason": "made it", "exited": True}),
        ],
        [("t", "next", "tag"), ("tag", "next", "if"), ("if", "yes", "end")],
    )
    run = await _walk(raw, _event("go"))
    assert [s.port for s in run.steps[:3]] == ["next", "next", "yes"]
    assert (run.ending, run.steps[-1].end, run.steps[-1].reason) == ("ended", "exited", "made it")
    assert dict(CUSTOMER.attributes) == {}


async def test_failures_loops_and_flows_nobody_enters() -> None:
    assert (await _walk(graph([], []))).ending == "no_trigger"
    boom = graph(
        [("t", "test.trigger", {"event_type": "go"}), ("x", "test.explode", {})],
        [("t", "next", "x")],
    )
    exploding = Profile(kind="contact", id="0", attributes={"explode": True})
    failed = await _walk(boom, _event("go"), profile=exploding)
    assert failed.ending == "error" and failed.steps[-1].error == "RuntimeError: boom"
    broken = graph(
        [("t", "test.trigger", {"event_type": "go"}), ("m", "test.email", {})],
        [("t", "next", "m")],
    )
    cannot = await _walk(broken, _event("go"))
    assert cannot.ending == "cannot_run" and cannot.steps[-1].error
    loop = graph(
        [
            ("t", "test.trigger", {"event_type": "go"}),
            ("a", "test.tag", {"tag": "a"}),
            ("b", "test.tag", {"tag": "b"}),
        ],
        [("t", "next", "a"), ("a", "next", "b"), ("b", "next", "a")],
    )
    looped = await _walk(loop, _event("go"), max_steps=7)
    assert looped.ending == "loop" and len(looped.steps) == 7
    assert looped.visited["a"] == [2, 4, 6]


async def test_test_mode_fails_an_undeclared_port_like_the_engine() -> None:
    raw = graph(
        [("t", "test.trigger", {"event_type": "go"}), ("s", "test.stray", {})],
        [("t", "next", "s")],
    )
    run = await _walk(raw, _event("go"))
    assert run.ending == "error"
    assert run.steps[-1].error is not None and "'elsewhere'" in run.steps[-1].error


async def test_test_mode_exits_on_unsubscribe_where_the_flow_says_so() -> None:
    withdrawn = Profile(
        kind="contact", id="0", email="t@example.test", consent={"email": {"granted": False}}
    )
    exits = canonical_graph()
    run = await _walk(exits, _event("form.submitted"), profile=withdrawn)
    assert run.ending == "ended" and _path(run) == [("form", "ended")]
    assert (run.steps[0].end, run.steps[0].reason, run.steps[0].messages) == (
        "exited",
        "unsubscribed",
        (),
    )
    stays = canonical_graph() | {"settings": {"exit_on": ["goal_reached"]}}
    assert (await _walk(stays, _event("form.submitted"), profile=withdrawn)).steps[1].messages


async def test_test_mode_sends_the_transactional_confirmation_to_the_unsubscribed() -> None:
    withdrawn = Profile(
        kind="contact", id="0", email="t@example.test", consent={"email": {"granted": False}}
    )
    raw = canonical_graph()
    for node in raw["nodes"]:
        if node["id"] == "confirm":
            node["config"]["category"] = "transactional"
    run = await _walk(raw, _event("form.submitted"), profile=withdrawn)
    assert [(s.node_id, s.end, s.reason) for s in run.steps[:3]] == [
        ("form", None, None),
        ("confirm", None, None),
        ("opened", "exited", "unsubscribed"),
    ]
    assert [m.payload["subject"] for m in run.steps[1].messages] == ["Your download"]
    assert run.steps[1].messages[0].category == "transactional"
