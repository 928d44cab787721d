"""The A/B split: shares add up, ports follow the config, branches are stable per customer."""

from __future__ import annotations

from collections import Counter

from nodes.builtin.splits import ABSplit, bucket
from nodes.sdk.testing import config_errors, contact, run_node

ABC = {
    "variants": [
        {"key": "a", "percent": 40},
        {"key": "b", "percent": 30},
        {"key": "c", "label": "Long copy", "percent": 20},
    ],
    "holdout_percent": 10,
}


def test_ports_come_from_the_config() -> None:
    ports = ABSplit.output_ports(ABSplit.parse_config(ABC))
    assert [(p.id, p.label) for p in ports] == [
        ("a", "A"),
        ("b", "B"),
        ("c", "Long copy"),
        ("holdout", "Holdout"),
    ]
    default = ABSplit.output_ports(ABSplit.parse_config({}))
    assert [p.id for p in default] == ["a", "b"]


def test_shares_must_add_up_and_ids_be_unique() -> None:
    short = {"variants": [{"key": "a", "percent": 50}, {"key": "b", "percent": 40}]}
    assert "add up to 90%" in config_errors(ABSplit, short)["__root__"]
    twice = {"variants": [{"key": "a", "percent": 50}, {"key": "a", "percent": 50}]}
    assert "same id" in config_errors(ABSplit, twice)["__root__"]
    reserved = {"variants": [{"key": "holdout", "percent": 100}]}
    assert "reserved" in config_errors(ABSplit, reserved)["__root__"]
    thirds = {
        "variants": [{"key": k, "percent": 33.33} for k in "ab"] + [{"key": "c", "percent": 33.34}]
    }
    assert config_errors(ABSplit, thirds) == {}


async def test_same_customer_same_branch_and_shares_are_respected() -> None:
    counts: Counter[str] = Counter()
    for n in range(4000):
        profile = contact(n)
        first = await run_node(ABSplit, ABC, profile=profile, flow_id=3, node_id="split")
        again = await run_node(
            ABSplit, ABC, profile=profile, flow_id=3, node_id="split", journey_id=99
        )
        assert first.port == again.port
        assert first.data == {"split": {"branch": first.port}}
        counts[str(first.port)] += 1
    expected = {"a": 1600, "b": 1200, "c": 800, "holdout": 400}
    for port, share in expected.items():
        # Binomial standard deviation is at most ~31 here; 4 sigma is a safe band.
        assert abs(counts[port] - share) < 125, counts


def test_each_split_node_draws_independently() -> None:
    same = sum(
        (bucket(1, f"contact:{n}", "first") < 5000) == (bucket(1, f"contact:{n}", "second") < 5000)
        for n in range(2000)
    )
    assert 850 < same < 1150  # independent halves agree about half the time
