"""A/B verdicts: which branch of a split converts better, and how sure we are.

Pure functions over counts (customers per branch, conversions per branch), so
the arithmetic is checked by hand in the tests. The significance test is the
two-sided test for two proportions from ``scipy.stats``: Pearson's chi-square
without continuity correction (the same p-value as the pooled z-test) when
every expected cell holds at least five customers, Fisher's exact test when a
branch is too small for that approximation. The interval is the Wald interval
of the difference in conversion rates.

With more than two branches the leader must beat every other branch, each
comparison at 5 % divided by the number of comparisons (Bonferroni), so a
four-way test is not three chances to see a winner by luck.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from babel import numbers

from backend.i18n import _, current_locale
from backend.i18n.formats import format_number

__all__ = [
    "CONFIDENCE",
    "POWER",
    "SMALLEST_LIFT",
    "Arm",
    "Comparison",
    "Outcome",
    "Verdict",
    "compare",
    "customers_needed",
    "judge",
    "verdict_text",
]

CONFIDENCE = 0.95
# The chance of seeing a real difference of the size observed, used to estimate
# how many more customers a test needs before it can call a winner.
POWER = 0.8
# A lift (relative) smaller than this is not worth acting on: once the branches
# are large enough to have seen it and have not, they convert "about the same".
SMALLEST_LIFT = 0.2


@dataclass(frozen=True)
class Arm:
    """One branch of a split: how many customers took it and how many of them converted."""

    key: str
    label: str
    customers: int
    converted: int

    @property
    def rate(self) -> float:
        return self.converted / self.customers if self.customers else 0.0


@dataclass(frozen=True)
class Comparison:
    """``challenger`` against ``baseline``: the difference in rates, its interval, the p-value."""

    baseline: Arm
    challenger: Arm
    difference: float
    low: float
    high: float
    p_value: float
    test: str  # "chi-square" or "fisher"


class Outcome(StrEnum):
    empty = "empty"  # nobody has reached the split
    winner = "winner"  # the leader beats every other branch
    need_more = "need_more"  # a difference is showing; more customers can settle it
    one_branch = "one_branch"  # only one branch has customers so far
    no_conversions = "no_conversions"  # nobody converted: nothing to compare yet
    same = "same"  # enough customers, and the branches convert alike


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    leader: Arm | None = None
    comparisons: tuple[Comparison, ...] = ()
    more_customers: int = 0


@functools.cache
def _stats() -> Any:
    """``scipy.stats``, imported on first use: it costs seconds of CPU to import,
    which every process that imports the app (workers, CLI calls) would pay."""
    from scipy import stats

    return stats


def _z(confidence: float) -> float:
    return float(_stats().norm.ppf(1 - (1 - confidence) / 2))


def compare(baseline: Arm, challenger: Arm, confidence: float = CONFIDENCE) -> Comparison:
    """Test whether the two branches' conversion rates differ."""
    if not baseline.customers or not challenger.customers:
        raise ValueError("both branches need customers to be compared")
    table = [
        [challenger.converted, challenger.customers - challenger.converted],
        [baseline.converted, baseline.customers - baseline.converted],
    ]
    converted = challenger.converted + baseline.converted
    total = challenger.customers + baseline.customers
    if converted == 0 or converted == total:
        p_value, test = 1.0, "chi-square"  # everyone alike: no difference to test
    else:
        expected = _stats().contingency.expected_freq(table)
        if expected.min() >= 5:
            p_value = float(_stats().chi2_contingency(table, correction=False).pvalue)
            test = "chi-square"
        else:
            p_value, test = float(_stats().fisher_exact(table).pvalue), "fisher"
    difference = challenger.rate - baseline.rate
    spread = _z(confidence) * math.sqrt(
        challenger.rate * (1 - challenger.rate) / challenger.customers
        + baseline.rate * (1 - baseline.rate) / baseline.customers
    )
    return Comparison(
        baseline, challenger, difference, difference - spread, difference + spread, p_value, test
    )


def customers_needed(
    first: float, second: float, confidence: float = CONFIDENCE, power: float = POWER
) -> int | None:
    """Customers each branch needs to tell ``first`` from ``second`` (None: they are equal).

    The usual sample size for comparing two proportions:
    n = (z_a * sqrt(2 p (1 - p)) + z_b * sqrt(p1 (1 - p1) + p2 (1 - p2)))^2 / (p1 - p2)^2
    with p the mean of the two rates.
    """
    if first == second:
        return None
    mean = (first + second) / 2
    z_alpha = _z(confidence)
    z_beta = float(_stats().norm.ppf(power))
    root = z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_beta * math.sqrt(
        first * (1 - first) + second * (1 - second)
    )
    return math.ceil(root**2 / (first - second) ** 2)


def judge(arms: list[Arm], confidence: float = CONFIDENCE) -> Verdict:
    """The verdict on a split from its branches' counts."""
    reached = [arm for arm in arms if arm.customers]
    if not reached:
        return Verdict(Outcome.empty)
    if len(reached) == 1:
        return Verdict(Outcome.one_branch, reached[0])
    if not any(arm.converted for arm in reached):
        return Verdict(Outcome.no_conversions)
    ranked = sorted(reached, key=lambda arm: arm.rate, reverse=True)
    leader, others = ranked[0], ranked[1:]
    comparisons = tuple(compare(other, leader, confidence) for other in others)
    level = 1 - (1 - confidence) / len(others)
    if all(c.p_value < 1 - level and c.difference > 0 for c in comparisons):
        return Verdict(Outcome.winner, leader, comparisons)
    runner_up = others[0]
    # Aim at the lift seen, or at the smallest lift worth acting on if the one seen is smaller.
    target = max(leader.rate, min(1.0, runner_up.rate * (1 + SMALLEST_LIFT)))
    needed = customers_needed(target, runner_up.rate, level) or 0
    more = _more(reached, (leader, runner_up), needed)
    if more == 0:
        return Verdict(Outcome.same, leader, comparisons)
    return Verdict(Outcome.need_more, leader, comparisons, more)


def _more(arms: list[Arm], compared: tuple[Arm, Arm], needed: int) -> int:
    """More customers through the whole split until both compared branches hold ``needed``.

    Customers divide between branches in the shares seen so far, so a branch
    taking a fifth of them needs five new customers at the split for each one
    it lacks.
    """
    total = sum(arm.customers for arm in arms)
    more = 0.0
    for arm in compared:
        lacking = needed - arm.customers
        if lacking > 0:
            more = max(more, lacking * total / arm.customers)
    return math.ceil(more)


def verdict_text(verdict: Verdict) -> str:
    """The verdict in plain words, in the reader's language."""
    confidence = numbers.format_percent(CONFIDENCE, locale=current_locale())
    match verdict.outcome:
        case Outcome.empty:
            return _("No customers have reached this split yet.")
        case Outcome.one_branch:
            return _("Not enough data yet: only one branch has customers so far.")
        case Outcome.no_conversions:
            return _("Not enough data yet: no customer on any branch has converted.")
        case Outcome.winner:
            assert verdict.leader is not None
            return _("{branch} converts better, {confidence} confident.").format(
                branch=verdict.leader.label, confidence=confidence
            )
        case Outcome.need_more:
            return _("Not enough data yet: about {count} more customers needed.").format(
                count=format_number(verdict.more_customers)
            )
        case Outcome.same:
            return _("No clear winner: the branches convert about the same.")
