"""A/B verdict statistics against cases worked out by hand."""

from __future__ import annotations

import math

import pytest

from backend.flows.verdicts import Arm, Outcome, compare, customers_needed, judge, verdict_text

A = "A"
B = "B"


def test_two_proportions_match_the_hand_computed_z_test() -> None:
    # A: 20 of 200 convert (10 %), B: 40 of 200 (20 %).
    # Pooled rate p = 60 / 400 = 0.15; standard error under "no difference"
    #   sqrt(0.15 * 0.85 * (1/200 + 1/200)) = sqrt(0.001275) = 0.0357071
    # z = (0.20 - 0.10) / 0.0357071 = 2.80056; two-sided p = 2 * (1 - Phi(2.80056)) = 0.0051014
    # Wald interval: sqrt(0.1 * 0.9 / 200 + 0.2 * 0.8 / 200) = sqrt(0.00125) = 0.0353553
    #   0.10 -/+ 1.959964 * 0.0353553 = 0.10 -/+ 0.0692952 -> [0.0307048, 0.1692952]
    result = compare(Arm("a", A, 200, 20), Arm("b", B, 200, 40))
    assert result.test == "chi-square"
    assert result.difference == pytest.approx(0.10)
    assert result.p_value == pytest.approx(0.0051014, abs=1e-6)
    assert (result.low, result.high) == (
        pytest.approx(0.0307048, abs=1e-6),
        pytest.approx(0.1692952, abs=1e-6),
    )


def test_small_branches_use_fishers_exact_test() -> None:
    # 0 of 3 against 3 of 3. With the margins fixed (3 converted of 6), the tables as
    # extreme as this one are "all three in B" and "all three in A", each with
    # probability 1 / C(6, 3) = 1 / 20: p = 2 / 20 = 0.1.
    result = compare(Arm("a", A, 3, 0), Arm("b", B, 3, 3))
    assert result.test == "fisher"
    assert result.p_value == pytest.approx(0.1)


def test_sample_size_matches_the_textbook_formula() -> None:
    # p1 = 0.10, p2 = 0.20, mean 0.15; z(0.975) = 1.959964, z(0.8) = 0.841621
    # (1.959964 * sqrt(2 * 0.15 * 0.85) + 0.841621 * sqrt(0.09 + 0.16))^2 / 0.1^2
    # = (0.989733 + 0.420811)^2 / 0.01 = 198.96 -> 199 per branch
    assert customers_needed(0.10, 0.20) == 199
    assert customers_needed(0.3, 0.3) is None


def test_a_clear_difference_names_the_winner() -> None:
    verdict = judge([Arm("a", A, 200, 20), Arm("b", B, 200, 40)])
    assert verdict.outcome is Outcome.winner
    assert verdict.leader is not None and verdict.leader.key == "b"
    assert verdict_text(verdict) == "B converts better, 95% confident."


def test_a_hint_of_a_difference_says_how_many_more_customers_are_needed() -> None:
    # 14 % against 10 %: 1.959964 * sqrt(2 * 0.12 * 0.88) + 0.841621 * sqrt(0.1204 + 0.09)
    # = 0.900731 + 0.386046 = 1.286777; squared / 0.04^2 = 1034.87 -> 1035 per branch.
    # Each branch takes half the customers: (1035 - 100) * 2 = 1870 more at the split.
    verdict = judge([Arm("a", A, 100, 10), Arm("b", B, 100, 14)])
    assert verdict.outcome is Outcome.need_more
    assert verdict.more_customers == 1870
    assert verdict_text(verdict) == "Not enough data yet: about 1,870 more customers needed."


def test_branches_large_enough_to_see_a_worthwhile_lift_and_not_seeing_one_are_the_same() -> None:
    # 10.1 % against 10 %: less than the smallest lift worth acting on (20 %, so 12 %);
    # 3,841 customers per branch could have seen 12 % against 10 %, and both have 5,000.
    verdict = judge([Arm("a", A, 5000, 500), Arm("b", B, 5000, 505)])
    assert verdict.outcome is Outcome.same
    assert verdict_text(verdict) == "No clear winner: the branches convert about the same."


def test_more_branches_must_each_be_beaten_at_a_stricter_level() -> None:
    # B against A alone would win (p = 0.0051 < 0.05), but with three branches each
    # comparison must pass 0.05 / 2 = 0.025: B against C (p ~ 0.25) does not.
    arms = [Arm("a", A, 200, 20), Arm("b", B, 200, 40), Arm("c", "C", 200, 32)]
    verdict = judge(arms)
    assert verdict.outcome is Outcome.need_more
    assert {c.baseline.key for c in verdict.comparisons} == {"a", "c"}
    strict = judge([Arm("a", A, 2000, 200), Arm("b", B, 2000, 400), Arm("c", "C", 2000, 210)])
    assert strict.outcome is Outcome.winner


@pytest.mark.parametrize(
    ("arms", "outcome", "text"),
    [
        ([Arm("a", A, 0, 0), Arm("b", B, 0, 0)], Outcome.empty, "No customers have reached"),
        ([Arm("a", A, 4, 1), Arm("b", B, 0, 0)], Outcome.one_branch, "only one branch"),
        ([Arm("a", A, 40, 0), Arm("b", B, 40, 0)], Outcome.no_conversions, "has converted"),
    ],
)
def test_too_little_data_says_so(arms: list[Arm], outcome: Outcome, text: str) -> None:
    verdict = judge(arms)
    assert verdict.outcome is outcome
    assert text in verdict_text(verdict)


def test_comparing_needs_customers_on_both_sides() -> None:
    with pytest.raises(ValueError, match="both branches"):
        compare(Arm("a", A, 0, 0), Arm("b", B, 10, 1))
    assert math.isfinite(compare(Arm("a", A, 10, 10), Arm("b", B, 10, 10)).p_value)
