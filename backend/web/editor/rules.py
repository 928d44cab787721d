"""The rule builder on rule-bearing steps (condition, audience filter, entered audience).

The same builder as the contacts page (a field or attribute, an operator, a
value) adds a condition to the step's rule, and a live count says how many
contacts match the rule now, counted by the same query as the contacts list.
"""

from __future__ import annotations

import html
import json
from typing import Any

from litestar import Request, get
from litestar.params import FromPath, FromQuery
from sqlalchemy import func, select

from backend.auth.guards import role
from backend.contacts.filtering import (
    combine,
    contacts_query,
    count_contacts,
    parse_rule_text,
    simple_rule,
)
from backend.contacts.normalize import InvalidValue
from backend.deps import Db, Now
from backend.i18n import _, ngettext
from backend.models import Contact, Role
from backend.web.editor.edits import BASE
from runtime.rules import rule_to_json


@get(BASE + "/rule-count", opt=role(Role.viewer))
async def rule_count(
    request: Request[Any, Any, Any],
    db: Db,
    clock: Now,
    flow_id: FromPath[int],
    field: FromQuery[str],
) -> str:
    """How many contacts the rule in field ``cfg.<field>`` matches now, as a line of text."""
    text = request.query_params.get(f"cfg.{field}", "")
    try:
        rule = parse_rule_text(text)
    except InvalidValue as exc:
        return html.escape(exc.message)
    total = await db.scalar(select(func.count()).select_from(Contact)) or 0
    if rule is None:
        return _("Everyone: %(total)s contacts.") % {"total": total}
    matching = await count_contacts(db, contacts_query(db, "", rule, clock.now()))
    return ngettext(
        "%(num)d of %(total)d contacts matches now.",
        "%(num)d of %(total)d contacts match now.",
        matching,
    ) % {"num": matching, "total": total}


@get(BASE + "/rule-add", opt=role(Role.marketer))
async def rule_add(
    db: Db,
    flow_id: FromPath[int],
    current: FromQuery[str] = "",
    key: FromQuery[str] = "",
    op: FromQuery[str] = "equals",
    value: FromQuery[str] = "",
) -> dict[str, str]:
    """The step's rule with one more condition (all must hold), or what is wrong with it."""
    try:
        rules = (parse_rule_text(current), await simple_rule(db, key, op, value))
    except InvalidValue as exc:
        return {"error": exc.message}
    combined = combine(*rules)
    if combined is None:
        return {"error": _("Choose a field or attribute first.")}
    return {"rule": json.dumps(rule_to_json(combined), indent=2, ensure_ascii=False)}


ROUTES = [rule_count, rule_add]
