"""The Python evaluator: does one customer (profile + events, at ``now``) match a rule?

It implements docs/rules.md exactly like the SQL compiler in ``runtime.rules.sql``;
the property test in tests/runtime/rules keeps the two in agreement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from nodes.sdk import EventRecord, Profile
from runtime.rules.ast import (
    AllOf,
    AnyOf,
    AttributeCondition,
    EngagementCondition,
    EventCondition,
    FieldCondition,
    NotRule,
    PropertyFilter,
    Rule,
)

_DATE_PREFIX = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

# The name under which runtime.db registers ``sql_fold`` on every SQLite connection.
SQLITE_FOLD = "tf_lower"


def fold(text: str) -> str:
    """Case folding for rule comparisons: Python's ``str.lower()``, the same in every database.

    Unicode-aware ("Åsa" and "ÅSA" both fold to "åsa") but not ``casefold()``:
    "ß" stays "ß" rather than becoming "ss", which no database does the same
    way. The SQL compiler folds identically: SQLite calls this very function
    (``SQLITE_FOLD``), PostgreSQL uses ``lower()`` under ICU's root locale,
    which applies the same Unicode lowercase mappings (checked against
    ``str.lower()`` on the server for Latin, Greek, Cyrillic and İ).
    """
    return text.lower()


def sql_fold(value: object) -> object:
    """``fold`` as a SQL function: text is folded, anything else (NULL, numbers) passes as is."""
    return fold(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class RuleClock:
    """The "now" a rule is judged at, and the time zone that decides which day is today."""

    now: datetime
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("rules are evaluated at an aware datetime")

    @property
    def today(self) -> str:
        return self.now.astimezone(ZoneInfo(self.timezone)).date().isoformat()

    def days_ago(self, days: int) -> str:
        local = self.now.astimezone(ZoneInfo(self.timezone)).date()
        return (local - timedelta(days=days)).isoformat()

    def since(self, days: int) -> datetime:
        return self.now - timedelta(days=days)


def read_typed(kind: str, raw: Any) -> Any:
    """The value as a rule sees it, or None when it is missing or of another JSON type."""
    if kind == "string":
        return raw if isinstance(raw, str) and raw else None
    if kind == "number":
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return None
        return float(raw)
    if kind == "boolean":
        return raw if isinstance(raw, bool) else None
    if kind == "date":
        if isinstance(raw, str) and _DATE_PREFIX.fullmatch(raw[:10]):
            return raw[:10]
        return None
    raise ValueError(f"unknown value type {kind!r}")


def compare(kind: str, op: str, actual: Any, expected: Any, clock: RuleClock) -> bool:
    """Apply ``op`` to a value already read with ``read_typed`` (None means missing)."""
    if op == "is_set":
        return actual is not None
    if actual is None:
        return False
    if kind == "string":
        actual = fold(actual)
        if op == "in":
            return actual in {fold(item) for item in expected}
        if op == "contains":
            return fold(expected) in actual
        if op == "starts_with":
            return bool(actual.startswith(fold(expected)))
        expected = fold(expected)
    if op == "within_last_days":
        return bool(clock.days_ago(expected) <= actual <= clock.today)
    return bool(_ORDERED[op](actual, expected))


_ORDERED: dict[str, Any] = {
    "equals": lambda a, b: a == b,
    "not_equals": lambda a, b: a != b,
    "in": lambda a, b: a in b,
    "gt": lambda a, b: a > b,
    "lt": lambda a, b: a < b,
    "before": lambda a, b: a < b,
    "after": lambda a, b: a > b,
    "between": lambda a, b: b[0] <= a <= b[1],
}


def _field(profile: Profile, condition: FieldCondition, clock: RuleClock) -> bool:
    raw = getattr(profile, condition.field)
    if condition.kind == "tags":
        tags = [fold(tag) for tag in raw if isinstance(tag, str)]
        if condition.op == "is_set":
            return bool(tags)
        return fold(condition.value) in tags
    return compare(
        condition.kind, condition.op, read_typed(condition.kind, raw), condition.value, clock
    )


def matches_filter(properties: Mapping[str, Any], item: PropertyFilter, clock: RuleClock) -> bool:
    """Does one event's properties pass one property filter?"""
    actual = read_typed(item.type, properties.get(item.key))
    return compare(item.type, item.op, actual, item.value, clock)


def _event(events: Iterable[EventRecord], condition: EventCondition, clock: RuleClock) -> bool:
    since = clock.since(condition.within_days) if condition.within_days is not None else None
    count = 0
    for event in events:
        if event.type != condition.event:
            continue
        if since is not None and event.occurred_at < since:
            continue
        if all(matches_filter(event.properties, item, clock) for item in condition.where):
            count += 1
            if count >= condition.at_least:
                break
    return (count >= condition.at_least) == condition.did


def evaluate(
    rule: Rule,
    profile: Profile,
    events: Iterable[EventRecord] = (),
    *,
    now: datetime,
    timezone: str = "UTC",
) -> bool:
    """Does this customer match ``rule`` at ``now``?

    ``events`` must hold every event of the types the rule names
    (``event_types(rule)``) within its windows; the evaluator cannot know about
    events it is not given. ``timezone`` decides which calendar day is today
    for date comparisons.
    """
    return _evaluate(rule, profile, tuple(events), RuleClock(now, timezone))


def _evaluate(
    rule: Rule, profile: Profile, events: tuple[EventRecord, ...], clock: RuleClock
) -> bool:
    if isinstance(rule, AllOf):
        return all(_evaluate(child, profile, events, clock) for child in rule.all)
    if isinstance(rule, AnyOf):
        return any(_evaluate(child, profile, events, clock) for child in rule.any)
    if isinstance(rule, NotRule):
        return not _evaluate(rule.negated, profile, events, clock)
    if isinstance(rule, FieldCondition):
        return _field(profile, rule, clock)
    if isinstance(rule, AttributeCondition):
        actual = read_typed(rule.type, profile.attributes.get(rule.key))
        return compare(rule.type, rule.op, actual, rule.value, clock)
    if isinstance(rule, EventCondition):
        return _event(events, rule, clock)
    if isinstance(rule, EngagementCondition):
        return _event(events, rule.as_event(), clock)
    raise TypeError(f"not a rule: {rule!r}")
