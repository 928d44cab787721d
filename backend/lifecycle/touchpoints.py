"""Touchpoint cards: reading what people typed, saving under the revision rule, moving them.

Every change names the revision it was made on and is written with
``UPDATE ... WHERE revision = :seen``: of two people saving the same card from
the same revision, the second gets a ``Conflict`` instead of overwriting the first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.i18n import N_, _
from backend.lifecycle.plan import PlanError, get_process
from backend.models import (
    LifecycleSettings,
    Touchpoint,
    TouchpointCategory,
    TouchpointStatus,
    utcnow,
)
from runtime.rules.ast import InvalidRule, parse_rule, rule_to_json

TITLE_MAX = 200
TEXT_MAX = 5000
AUDIENCE_MAX = 300
OWNER_MAX = 120

CATEGORIES = {
    TouchpointCategory.today.value: N_("Communication today"),
    TouchpointCategory.company.value: N_("In the company's interest"),
    TouchpointCategory.customer.value: N_("In the customer's interest"),
}
STATUSES = {
    TouchpointStatus.idea.value: N_("Idea"),
    TouchpointStatus.planned.value: N_("Planned"),
    TouchpointStatus.production.value: N_("Content in production"),
    TouchpointStatus.automated.value: N_("Automated"),
    TouchpointStatus.manual.value: N_("Manual"),
    TouchpointStatus.retired.value: N_("Retired"),
}
CHANNELS = {
    "email": N_("Email"),
    "sms": N_("SMS"),
    "web": N_("Web"),
    "phone": N_("Phone call"),
    "meeting": N_("Meeting"),
    "letter": N_("Letter"),
    "social": N_("Social"),
    "event": N_("Event"),
}
# Channels a flow can carry out by itself: a manual touchpoint on one of them could be automated.
AUTOMATABLE_CHANNELS = frozenset({"email", "sms", "web"})
# Statuses that end the work a priority asks for: they are never overdue.
SETTLED = frozenset(
    {
        TouchpointStatus.automated.value,
        TouchpointStatus.manual.value,
        TouchpointStatus.retired.value,
    }
)


class Conflict(Exception):
    """The card changed since the editor loaded it."""

    def __init__(self, touchpoint: Touchpoint) -> None:
        super().__init__(touchpoint.id)
        self.touchpoint = touchpoint

    @property
    def message(self) -> str:
        return _(
            "Someone else changed “%(title)s” while you were editing (it is now at revision "
            "%(revision)d). Reload the board to see their change, then make yours again."
        ) % {"title": self.touchpoint.title, "revision": self.touchpoint.revision}


@dataclass
class CardInput:
    """A card's fields as validated from a form, a CSV row or JSON."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key, "")
    return value.strip() if isinstance(value, str) else ""


def read_card(raw: Mapping[str, Any], channels: Sequence[str]) -> CardInput:
    """Validate a card's fields; errors are per field, in words a marketer understands."""
    card = CardInput()
    title = " ".join(_text(raw, "title").split())
    if not title:
        card.errors["title"] = _("Give the touchpoint a title.")
    elif len(title) > TITLE_MAX:
        card.errors["title"] = _("Keep the title under %(num)d characters.") % {"num": TITLE_MAX}
    category = _text(raw, "category")
    if category not in CATEGORIES:
        card.errors["category"] = _("Choose today, the company's interest or the customer's.")
    status = _text(raw, "status") or TouchpointStatus.idea.value
    if status not in STATUSES:
        card.errors["status"] = _("Choose one of the statuses.")
    priority_raw = _text(raw, "priority") or "2"
    priority = int(priority_raw) if priority_raw in ("1", "2", "3") else 0
    if not priority:
        card.errors["priority"] = _("The priority is 1, 2 or 3.")
    picked = [channel.strip().lower() for channel in channels if channel.strip()]
    unknown = [channel for channel in picked if channel not in CHANNELS]
    if unknown:
        card.errors["channels"] = _("Unknown channel: %(names)s.") % {"names": ", ".join(unknown)}
    description = _text(raw, "description")
    decision = _text(raw, "decision")
    for name, value in (("description", description), ("decision", decision)):
        if len(value) > TEXT_MAX:
            card.errors[name] = _("Keep this under %(num)d characters.") % {"num": TEXT_MAX}
    owner = _text(raw, "owner")
    if len(owner) > OWNER_MAX:
        card.errors["owner"] = _("Keep the owner under %(num)d characters.") % {"num": OWNER_MAX}
    audience_text, audience_rule = _audience(_text(raw, "audience"), card)
    card.values = {
        "title": title,
        "description": description,
        "category": category,
        "status": status,
        "priority": priority,
        "channels": list(dict.fromkeys(picked)),
        "decision": decision,
        "owner": owner,
        "audience_text": audience_text,
        "audience_rule": audience_rule,
    }
    return card


def _audience(raw: str, card: CardInput) -> tuple[str, dict[str, Any] | None]:
    """Free text, or (starting with ``{``) an audience rule in the rule language's JSON."""
    if not raw.startswith("{"):
        if len(raw) > AUDIENCE_MAX:
            card.errors["audience"] = _("Keep the customer group under %(num)d characters.") % {
                "num": AUDIENCE_MAX
            }
        return raw, None
    try:
        rule = rule_to_json(parse_rule(json.loads(raw)))
    except json.JSONDecodeError:
        card.errors["audience"] = _("The customer group starts like a rule but is not valid JSON.")
        return raw, None
    except InvalidRule as exc:
        card.errors["audience"] = _("The audience rule is not valid: %(problem)s") % {
            "problem": str(exc)
        }
        return raw, None
    return "", rule


def audience_label(touchpoint: Touchpoint) -> str:
    if touchpoint.audience_rule is not None:
        return json.dumps(touchpoint.audience_rule, ensure_ascii=False)
    return touchpoint.audience_text


async def _next_position(db: AsyncSession, process_id: int) -> int:
    last = await db.scalar(
        select(func.max(Touchpoint.position)).where(Touchpoint.process_id == process_id)
    )
    return 0 if last is None else last + 1


async def create_card(
    db: AsyncSession, process_id: int, values: dict[str, Any], *, now: datetime | None = None
) -> Touchpoint:
    process = await get_process(db, process_id)
    if process.retired_at is not None:
        raise PlanError(_("This process is retired; cards cannot be added to it."))
    stamp = now or utcnow()
    card = Touchpoint(
        process_id=process.id,
        position=await _next_position(db, process.id),
        prioritised_at=stamp,
        created_at=stamp,
        updated_at=stamp,
        revision=1,
        **values,
    )
    db.add(card)
    await db.flush()
    return card


async def get_card(db: AsyncSession, touchpoint_id: int) -> Touchpoint:
    card = await db.get(Touchpoint, touchpoint_id)
    if card is None:
        raise PlanError(_("There is no touchpoint with this number."), status=404)
    return card


async def _guarded_update(
    db: AsyncSession, touchpoint_id: int, seen: int, values: dict[str, Any]
) -> Touchpoint:
    """Write ``values`` only if the card is still at revision ``seen``; else ``Conflict``."""
    result = await db.execute(
        update(Touchpoint)
        .where(Touchpoint.id == touchpoint_id, Touchpoint.revision == seen)
        .values(**values, revision=Touchpoint.revision + 1)
        .execution_options(synchronize_session=False)
    )
    card = await get_card(db, touchpoint_id)
    await db.refresh(card)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(card)
    return card


async def update_card(
    db: AsyncSession,
    touchpoint_id: int,
    seen: int,
    values: dict[str, Any],
    *,
    now: datetime | None = None,
) -> tuple[Touchpoint, dict[str, Any]]:
    """Save a card's fields; returns the card and what changed (``{field: [old, new]}``)."""
    before = await get_card(db, touchpoint_id)
    old = {key: getattr(before, key) for key in values}
    stamp = now or utcnow()
    extra: dict[str, Any] = {"updated_at": stamp}
    if values.get("priority") != before.priority:
        # A new priority starts its horizon again.
        extra["prioritised_at"] = stamp
    card = await _guarded_update(db, touchpoint_id, seen, {**values, **extra})
    changed = {key: [old[key], values[key]] for key in values if old[key] != values[key]}
    return card, changed


async def move_card(
    db: AsyncSession,
    touchpoint_id: int,
    seen: int,
    *,
    process_id: int | None = None,
    index: int | None = None,
    offset: int | None = None,
    now: datetime | None = None,
) -> Touchpoint:
    """Move a card to ``index`` on a process's timeline (or one step by ``offset``).

    The moved card's revision is checked and bumped; its neighbours are only
    renumbered, so moving one card never invalidates someone editing another.
    """
    card = await get_card(db, touchpoint_id)
    target = card.process_id if process_id is None else process_id
    process = await get_process(db, target)
    if process.retired_at is not None:
        raise PlanError(_("This process is retired; cards cannot be moved to it."))
    rows = list(
        await db.scalars(
            select(Touchpoint)
            .where(Touchpoint.process_id == target)
            .order_by(Touchpoint.position, Touchpoint.id)
        )
    )
    others = [row for row in rows if row.id != card.id]
    if offset is not None:
        if offset not in (-1, 1):
            raise PlanError(_("A card moves one place at a time."))
        ids = [row.id for row in rows]
        index = ids.index(card.id) + offset if card.id in ids else len(others)
    place = max(0, min(len(others), len(others) if index is None else index))
    order = [*others[:place], card, *others[place:]]
    for position, row in enumerate(order):
        if row.id != card.id and row.position != position:
            row.position = position
    await db.flush()
    return await _guarded_update(
        db,
        card.id,
        seen,
        {"process_id": target, "position": place, "updated_at": now or utcnow()},
    )


@dataclass(frozen=True)
class Horizon:
    """When a card's priority falls due, and whether that has passed unsettled."""

    due: datetime
    overdue: bool
    level: int


def horizon_months(settings: LifecycleSettings) -> dict[int, int]:
    return {
        1: settings.horizon_1_months,
        2: settings.horizon_2_months,
        3: settings.horizon_3_months,
    }


def horizon_of(card: Touchpoint, months: Mapping[int, int], now: datetime) -> Horizon:
    """A priority is due its horizon's months (30 days each) after it was set."""
    due = card.prioritised_at + timedelta(days=30 * months.get(card.priority, 12))
    return Horizon(due=due, overdue=card.status not in SETTLED and due < now, level=card.priority)


HORIZON_MAX = 120


def read_horizons(raw: Mapping[str, str]) -> tuple[dict[int, int], dict[str, str]]:
    values: dict[int, int] = {}
    errors: dict[str, str] = {}
    for level in (1, 2, 3):
        key = f"horizon_{level}"
        text = (raw.get(key) or "").strip()
        if not text.isdigit() or not 1 <= int(text) <= HORIZON_MAX:
            errors[key] = _("Give a number of months from 1 to %(num)d.") % {"num": HORIZON_MAX}
            continue
        values[level] = int(text)
    if not errors and not values[1] <= values[2] <= values[3]:
        errors["horizon_3"] = _("Each priority's horizon is at least as long as the one before.")
    return values, errors
