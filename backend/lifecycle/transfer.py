"""A board as CSV and back.

Cells a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
``@``, tab or carriage return) are written with a leading apostrophe, and the
apostrophe is taken off again on import. Import is all or nothing: every row is
checked first and the errors name their row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from backend.i18n import _
from backend.lifecycle.touchpoints import audience_label, read_card
from backend.models import Touchpoint

COLUMNS = [
    "title",
    "category",
    "priority",
    "status",
    "channels",
    "customer_group",
    "owner",
    "decision",
    "description",
    "answers",
]
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
MAX_ROWS = 2000


def guard(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA) else value


def unguard(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(_FORMULA) else value


def export_csv(cards: Sequence[Touchpoint]) -> str:
    titles = {card.id: card.title for card in cards}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for card in cards:
        row = [
            card.title,
            card.category,
            str(card.priority),
            card.status,
            ";".join(card.channels),
            audience_label(card),
            card.owner,
            card.decision,
            card.description,
            titles.get(card.answers_id, "") if card.answers_id else "",
        ]
        writer.writerow([guard(cell) for cell in row])
    return out.getvalue()


@dataclass
class Parsed:
    rows: list[dict[str, Any]] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_csv(text: str) -> Parsed:
    """Each row's card values (validated like the form) and the title it answers."""
    parsed = Parsed()
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [name for name in ("title", "category") if name not in (reader.fieldnames or [])]
    if missing:
        parsed.errors.append(
            _("The file needs the columns %(names)s.") % {"names": ", ".join(missing)}
        )
        return parsed
    for number, raw in enumerate(reader, start=2):
        if number > MAX_ROWS + 1:
            parsed.errors.append(_("Import at most %(num)d cards at a time.") % {"num": MAX_ROWS})
            break
        cells = {key: unguard(value or "") for key, value in raw.items() if key}
        cells["audience"] = cells.get("customer_group", "")
        channels = [part for part in cells.get("channels", "").split(";") if part.strip()]
        card = read_card(cells, channels)
        for problem in card.errors.values():
            parsed.errors.append(
                _("Row %(row)d: %(problem)s") % {"row": number, "problem": problem}
            )
        parsed.rows.append(card.values)
        parsed.answers.append(cells.get("answers", "").strip())
    return parsed
