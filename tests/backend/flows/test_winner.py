"""Routing a split's traffic to one branch: what stays, what goes."""

from __future__ import annotations

from typing import Any

import pytest

from backend.flows.winner import WinnerError, route_to_winner


def graph(edges: list[tuple[str, str, str]], *extra: str) -> dict[str, Any]:
    ids = {s for s, _p, _t in edges} | {t for _s, _p, t in edges} | set(extra)
    split = {"variants": [{"key": "a", "percent": 40}, {"key": "b", "percent": 40}]}
    return {
        "nodes": [
            {"id": i, "type": "x", "config": split | {"holdout_percent": 20} if i == "ab" else {}}
            for i in sorted(ids)
        ],
        "edges": [{"source": s, "port": p, "target": t} for s, p, t in edges],
        "settings": {"reentry": "once"},
    }


def shape(result: dict[str, Any]) -> tuple[list[str], list[tuple[str, str, str]]]:
    return (
        sorted(n["id"] for n in result["nodes"]),
        sorted((e["source"], e["port"], e["target"]) for e in result["edges"]),
    )


def test_the_winning_branch_takes_the_splits_place_and_shared_steps_stay() -> None:
    # start -> ab -a-> mail -> wait -> thanks ; ab -b-> sms -> wait ; ab -holdout-> (nothing)
    before = graph(
        [
            ("start", "next", "ab"),
            ("ab", "a", "mail"),
            ("ab", "b", "sms"),
            ("mail", "next", "wait"),
            ("sms", "next", "wait"),
            ("wait", "next", "thanks"),
        ],
        "goal",
    )
    after = route_to_winner(before, "ab", "b")
    assert shape(after) == (
        ["goal", "sms", "start", "thanks", "wait"],
        [("sms", "next", "wait"), ("start", "next", "sms"), ("wait", "next", "thanks")],
    )
    assert after["settings"] == {"reentry": "once"}
    assert len(before["nodes"]) == 7  # the input is left as it was


def test_an_empty_winning_branch_ends_the_journey_where_the_split_stood() -> None:
    before = graph([("start", "next", "ab"), ("ab", "a", "mail")])
    assert shape(route_to_winner(before, "ab", "holdout")) == (["start"], [])


def test_unknown_splits_and_branches_are_refused() -> None:
    before = graph([("start", "next", "ab"), ("ab", "a", "mail")])
    with pytest.raises(WinnerError, match="no node"):
        route_to_winner(before, "nope", "a")
    with pytest.raises(WinnerError, match="no branch"):
        route_to_winner(before, "ab", "c")
