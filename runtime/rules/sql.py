"""The SQL compiler: a rule as a boolean SQLAlchemy expression over ``contacts``.

Events are read through correlated EXISTS / COUNT subqueries on ``events``.
Every leaf compiles to an expression that is never NULL (a missing value is
false, not unknown), so ``not`` means the same as in Python. JSON is read with
``json_type``/``json_extract`` on SQLite and ``jsonb_typeof``/``->>`` on
PostgreSQL, always behind a type check inside CASE so that a value of the
wrong type can never reach a cast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Float,
    String,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import Function
from sqlalchemy.sql.selectable import Select

from runtime.models import Contact, Event, utcnow
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
from runtime.rules.evaluate import SQLITE_FOLD, RuleClock, fold

Bool = ColumnElement[bool]
DIALECTS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class _Reading:
    """A value read from a row: ``present`` guards ``value`` (never NULL when present)."""

    present: Bool
    value: ColumnElement[Any]


def folded(expr: ColumnElement[Any] | QueryableAttribute[Any], dialect: str) -> ColumnElement[str]:
    """``expr`` lowercased exactly like ``fold`` (str.lower), in SQL.

    SQLite's own lower() is ASCII-only, so it calls ``fold`` itself (registered by
    runtime.db); PostgreSQL's follows the collation, and ICU's root locale ("und")
    lowercases by the same Unicode mappings as Python, whatever lc_ctype is.
    """
    if dialect == "postgresql":
        return func.lower(expr.collate("und-x-icu"), type_=String())
    return Function(SQLITE_FOLD, expr, type_=String())


@dataclass(frozen=True)
class _Compiler:
    dialect: str
    clock: RuleClock

    def lower(self, expr: ColumnElement[Any]) -> ColumnElement[str]:
        return folded(expr, self.dialect)

    def bytewise(self, expr: ColumnElement[Any]) -> ColumnElement[Any]:
        return expr.collate("C") if self.dialect == "postgresql" else expr

    # -- reading JSON values -------------------------------------------------

    def _json_is(self, column: Any, key: str, kind: str) -> Bool:
        if self.dialect == "sqlite":
            names = {
                "string": ["text"],
                "number": ["integer", "real"],
                "boolean": ["true", "false"],
            }
            return func.json_type(column, _sqlite_path(key)).in_(names[kind])
        pg_kind = {"string": "string", "number": "number", "boolean": "boolean"}[kind]
        return func.jsonb_typeof(column.op("->")(literal(key, String()))) == pg_kind

    def _json_text(self, column: Any, key: str) -> ColumnElement[Any]:
        if self.dialect == "sqlite":
            text: ColumnElement[Any] = func.json_extract(column, _sqlite_path(key), type_=String())
            return text
        text = column.op("->>", return_type=String())(literal(key, String()))
        return text

    def json_value(self, column: Any, key: str, kind: str) -> _Reading:
        if kind == "number":
            return _Reading(
                self._json_is(column, key, "number"), cast(self._json_text(column, key), Float())
            )
        if kind == "boolean":
            text = (
                func.json_type(column, _sqlite_path(key))
                if self.dialect == "sqlite"
                else self._json_text(column, key)
            )
            return _Reading(self._json_is(column, key, "boolean"), text == "true")
        text = self._json_text(column, key)
        if kind == "string":
            return _Reading(and_(self._json_is(column, key, "string"), text != ""), text)
        return self.date_text(self._json_is(column, key, "string"), text)

    def date_text(self, is_text: Bool, text: ColumnElement[Any]) -> _Reading:
        if self.dialect == "sqlite":
            shape = text.op("GLOB")("[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*")
        else:
            shape = text.op("~")("^[0-9]{4}-[0-9]{2}-[0-9]{2}")
        return _Reading(and_(is_text, shape), func.substr(text, 1, 10, type_=String()))

    # -- comparing -----------------------------------------------------------

    def compare(self, kind: str, op: str, reading: _Reading, expected: Any) -> Bool:
        if op == "is_set":
            return _never_null(reading.present)
        return case((reading.present, self._test(kind, op, reading.value, expected)), else_=false())

    def _test(self, kind: str, op: str, value: ColumnElement[Any], expected: Any) -> Bool:
        if kind == "string":
            folded = self.lower(value)
            if op == "in":
                return folded.in_(sorted({fold(item) for item in expected}))
            if op == "contains":
                return folded.contains(fold(expected), autoescape=True)
            if op == "starts_with":
                return folded.startswith(fold(expected), autoescape=True)
            value, expected = folded, fold(expected)
        elif kind == "boolean":
            return value if (expected is True) == (op == "equals") else not_(value)
        elif kind == "date":
            value = self.bytewise(value)
            if op == "within_last_days":
                expected = [self.clock.days_ago(expected), self.clock.today]
                op = "between"
        return _OPS[op](value, expected)

    # -- rules ---------------------------------------------------------------

    def rule(self, rule: Rule) -> Bool:
        if isinstance(rule, AllOf):
            return and_(true(), *(self.rule(child) for child in rule.all))
        if isinstance(rule, AnyOf):
            return or_(false(), *(self.rule(child) for child in rule.any))
        if isinstance(rule, NotRule):
            return not_(self.rule(rule.negated))
        if isinstance(rule, FieldCondition):
            return self.field(rule)
        if isinstance(rule, AttributeCondition):
            reading = self.json_value(Contact.attributes, rule.key, rule.type)
            return self.compare(rule.type, rule.op, reading, rule.value)
        if isinstance(rule, EventCondition):
            return self.event(rule)
        if isinstance(rule, EngagementCondition):
            return self.event(rule.as_event())
        raise TypeError(f"not a rule: {rule!r}")

    def field(self, condition: FieldCondition) -> Bool:
        column = getattr(Contact, condition.field)
        if condition.kind == "tags":
            return self.tags(condition)
        if condition.kind == "number":
            reading = _Reading(column.is_not(None), column)
        else:
            reading = _Reading(and_(column.is_not(None), column != ""), column)
        return self.compare(condition.kind, condition.op, reading, condition.value)

    def tags(self, condition: FieldCondition) -> Bool:
        if self.dialect == "sqlite":
            elements = func.json_each(Contact.tags).table_valued("value", "type")
            is_array = func.json_type(Contact.tags) == "array"
            is_text = elements.c.type == "text"
            text: ColumnElement[Any] = elements.c.value
        else:
            elements = func.jsonb_array_elements(Contact.tags).table_valued("value")
            is_array = func.jsonb_typeof(Contact.tags) == "array"
            is_text = func.jsonb_typeof(elements.c.value) == "string"
            text = elements.c.value.op("#>>", return_type=String())(literal_column("'{}'"))
        where = [is_text]
        if condition.op == "contains":
            where.append(self.lower(text) == fold(condition.value))
        found = exists(select(literal(1)).select_from(elements).where(*where))
        return case((is_array, found), else_=false())

    def property_filter(self, item: PropertyFilter) -> Bool:
        reading = self.json_value(Event.properties, item.key, item.type)
        return self.compare(item.type, item.op, reading, item.value)

    def event(self, condition: EventCondition) -> Bool:
        # A claimed event (a browser's unproven word) is not yet the contact's history.
        where: list[Bool] = [
            Event.contact_id == Contact.id,
            Event.type == condition.event,
            Event.claimed.is_(False),
        ]
        if condition.within_days is not None:
            where.append(Event.occurred_at >= self.clock.since(condition.within_days))
        where.extend(self.property_filter(item) for item in condition.where)
        if condition.at_least == 1:
            did: Bool = exists(select(literal(1)).select_from(Event).where(*where))
        else:
            counted = select(func.count()).select_from(Event).where(*where).scalar_subquery()
            did = counted >= condition.at_least
        return did if condition.did else not_(did)


_OPS: dict[str, Callable[[Any, Any], Bool]] = {
    "equals": lambda value, expected: value == expected,
    "not_equals": lambda value, expected: value != expected,
    "in": lambda value, expected: value.in_(expected),
    "gt": lambda value, expected: value > expected,
    "lt": lambda value, expected: value < expected,
    "before": lambda value, expected: value < expected,
    "after": lambda value, expected: value > expected,
    # Not BETWEEN: PostgreSQL's grammar refuses COLLATE on its bounds.
    "between": lambda value, expected: and_(value >= expected[0], value <= expected[1]),
}


def _sqlite_path(key: str) -> str:
    # KEY_PATTERN keeps quotes and backslashes out of keys, so quoting is enough.
    return f'$."{key}"'


def _never_null(expr: Bool) -> Bool:
    return case((expr, true()), else_=false())


def to_sql(rule: Rule, *, dialect: str, now: datetime, timezone: str = "UTC") -> Bool:
    """Compile ``rule`` to a boolean expression over ``backend.models.Contact``.

    Use it in any statement whose FROM has ``contacts`` (the event subqueries
    correlate to it), e.g. ``INSERT ... SELECT`` enrollment. ``dialect`` is
    ``session.bind.dialect.name``: "sqlite" or "postgresql".
    """
    if dialect not in DIALECTS:
        raise ValueError(f"rules compile for {', '.join(DIALECTS)}, not {dialect!r}")
    return _Compiler(dialect, RuleClock(now, timezone)).rule(rule)


def audience_query(
    rule: Rule, *, dialect: str, now: datetime, timezone: str = "UTC"
) -> Select[Any]:
    """``SELECT contacts.id`` for every contact in the audience (erased contacts never are)."""
    condition = to_sql(rule, dialect=dialect, now=now, timezone=timezone)
    return select(Contact.id).where(Contact.erased_at.is_(None), condition)


async def count_audience(
    session: AsyncSession,
    rule: Rule,
    *,
    now: datetime | None = None,
    timezone: str = "UTC",
) -> int:
    """How many contacts match ``rule`` now: the editor's live count preview."""
    dialect = session.get_bind().dialect.name
    query = audience_query(rule, dialect=dialect, now=now or utcnow(), timezone=timezone)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    return int(total or 0)
