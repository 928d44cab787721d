"""Which contacts a list, an export or a count is about: a search text and a rule.

The rule is the runtime's rule language (``runtime.rules``), compiled to SQL by
the same compiler that selects audiences in flows, so a list filtered here
holds exactly the contacts a flow with that rule would enroll.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from backend.contacts.normalize import InvalidValue
from backend.i18n import gettext as _
from backend.models import Contact
from backend.models.ingestion import AttributeDefinition
from runtime.rules.ast import FIELD_TYPES, OPS_BY_TYPE, InvalidRule, Rule, parse_rule
from runtime.rules.evaluate import fold
from runtime.rules.sql import folded, to_sql

EXPORT_BATCH = 1000


def parse_rule_text(text: str) -> Rule | None:
    """A rule typed as JSON (the advanced filter); ``InvalidValue`` names what is wrong."""
    if not text.strip():
        return None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidValue("rule", _("the rule is not valid JSON: %(e)s") % {"e": exc.msg}) from exc
    try:
        return parse_rule(raw)
    except InvalidRule as exc:
        raise InvalidValue("rule", str(exc)) from exc


async def simple_rule(db: AsyncSession, key: str, op: str, value: str) -> Rule | None:
    """One condition from the filter builder: a contact field or a declared attribute."""
    key, op, value = key.strip(), op.strip(), value.strip()
    if not key:
        return None
    if key in FIELD_TYPES:
        raw: dict[str, Any] = {"field": key, "op": op}
        kind = str(FIELD_TYPES[key])
    else:
        declared = await db.scalar(
            select(AttributeDefinition.type).where(AttributeDefinition.key == key)
        )
        if declared is None:
            raise InvalidValue("filter", _("there is no attribute “%(k)s”") % {"k": key})
        kind = declared
        raw = {"attribute": key, "type": kind, "op": op}
    if op not in OPS_BY_TYPE.get(kind, ()):
        raise InvalidValue("filter", _("“%(op)s” does not apply to %(k)s") % {"op": op, "k": key})
    if op != "is_set":
        raw["value"] = _typed(kind, op, value)
    try:
        return parse_rule(raw)
    except InvalidRule as exc:
        raise InvalidValue("filter", str(exc)) from exc


def _typed(kind: str, op: str, value: str) -> Any:
    if op in ("in", "between"):
        return [_scalar(kind, part.strip()) for part in value.split(",") if part.strip()]
    if op == "within_last_days":
        return _scalar("number", value)
    return _scalar(kind, value)


def _scalar(kind: str, value: str) -> Any:
    if kind == "number":
        try:
            number = float(value.replace(",", "."))
        except ValueError as exc:
            raise InvalidValue("filter", _("“%(v)s” is not a number") % {"v": value}) from exc
        return int(number) if number.is_integer() else number
    if kind == "boolean":
        return value.lower() in ("true", "yes", "1")
    return value


def combine(*rules: Rule | None) -> Rule | None:
    present = [r for r in rules if r is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return parse_rule({"all": present})


def search_condition(dialect: str, text: str) -> ColumnElement[bool] | None:
    """Contacts whose email, name or phone contains ``text`` (any case), or whose external
    id is ``text``; None for an empty search. Case folds like the rule language."""
    text = text.strip()
    if not text:
        return None
    needle = fold(text)
    full_name = Contact.first_name + " " + Contact.last_name
    return or_(
        folded(Contact.email, dialect).contains(needle, autoescape=True),
        folded(full_name, dialect).contains(needle, autoescape=True),
        Contact.phone.contains(text, autoescape=True),
        Contact.external_id == text,
    )


def contacts_query(db: AsyncSession, text: str, rule: Rule | None, now: datetime) -> Select[Any]:
    """Live (not erased) contacts matching the search text and the rule."""
    stmt = select(Contact).where(Contact.erased_at.is_(None))
    dialect = db.get_bind().dialect.name
    searched = search_condition(dialect, text)
    if searched is not None:
        stmt = stmt.where(searched)
    if rule is not None:
        stmt = stmt.where(to_sql(rule, dialect=dialect, now=now))
    return stmt


async def count_contacts(db: AsyncSession, stmt: Select[Any]) -> int:
    return int(await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0)


async def iterate_contacts(
    sessions: async_sessionmaker[AsyncSession], text: str, rule: Rule | None, now: datetime
) -> AsyncIterator[list[Contact]]:
    """Matching contacts in id order, a batch at a time (keyset paging: no OFFSET scans)."""
    after = 0
    while True:
        async with sessions() as db:
            stmt = contacts_query(db, text, rule, now).where(Contact.id > after)
            batch = list(await db.scalars(stmt.order_by(Contact.id).limit(EXPORT_BATCH)))
        if not batch:
            return
        yield batch
        after = batch[-1].id
