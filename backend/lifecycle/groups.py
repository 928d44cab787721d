"""How many contacts a card's customer group holds now, when the group is an audience rule.

The count is the contacts page's own query (``backend.contacts.filtering``), so
the number on the board is the number the contacts list shows for that rule.
Free-text groups have no members to count.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from backend.contacts.filtering import contacts_query, count_contacts
from backend.lifecycle.touchpoints import audience_label
from backend.models import Touchpoint
from runtime.rules.ast import InvalidRule, parse_rule


@dataclass(frozen=True)
class GroupCount:
    label: str
    rule_json: str  # the rule as the contacts page's filter takes it
    contacts: int | None  # None when the rule no longer reads (it was saved valid)


async def group_counts(
    db: AsyncSession, cards: Sequence[Touchpoint], now: datetime
) -> list[GroupCount]:
    """One count per distinct rule-based customer group among ``cards``, in card order."""
    counts: dict[str, GroupCount] = {}
    for card in cards:
        if card.audience_rule is None:
            continue
        label = audience_label(card)
        if label in counts:
            continue
        rule_json = json.dumps(card.audience_rule, ensure_ascii=False)
        try:
            rule = parse_rule(card.audience_rule)
        except InvalidRule:
            counts[label] = GroupCount(label, rule_json, None)
            continue
        total = await count_contacts(db, contacts_query(db, "", rule, now))
        counts[label] = GroupCount(label, rule_json, total)
    return list(counts.values())
