"""The audit log's filters (who, what, which subject, when), read from the query string.

Dates are days in the reader's time zone: "from" starts at its midnight, "to"
runs to the end of its day, so "from 1 March to 1 March" is that whole day.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from litestar.exceptions import ValidationException
from sqlalchemy import Select, or_, select

from backend.i18n import _
from backend.i18n.formats import zone
from backend.models import AuditEntry

ACTOR_TYPES = ("user", "api_key", "system")


@dataclass(frozen=True)
class AuditFilter:
    """What the admin typed: every field optional, all of them must match."""

    who: str = ""  # part of the email or key name, or an actor id
    actor_type: str = ""  # user, api_key, system
    action: str = ""  # an action or its start ("flow." for every flow action)
    subject_type: str = ""  # flows, users, contacts ...
    subject_id: str = ""
    date_from: str = ""  # YYYY-MM-DD
    date_to: str = ""

    @classmethod
    def of(cls, **raw: str) -> AuditFilter:
        """Trimmed and checked; a wrong date or actor type is a 400 that says what to type."""
        values = {name: (raw.get(name) or "").strip()[:320] for name in cls.__dataclass_fields__}
        if values["actor_type"] not in ("", *ACTOR_TYPES):
            raise ValidationException(_("Choose a person, an API key or the system."))
        found = cls(**values)
        start, end = found._day(found.date_from), found._day(found.date_to)
        if start and end and start > end:
            raise ValidationException(_("The first day comes after the last day."))
        return found

    @staticmethod
    def _day(text: str) -> date | None:
        if not text:
            return None
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ValidationException(
                _("Type the date as year-month-day, like 2026-03-01.")
            ) from None

    def _bound(self, text: str, *, end: bool) -> datetime | None:
        day = self._day(text)
        if day is None:
            return None
        local = datetime.combine(day + timedelta(days=1) if end else day, time(), zone())
        return local.astimezone(UTC)

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        """``stmt`` (over AuditEntry) narrowed to the entries this filter matches."""
        if self.who:
            stmt = stmt.where(
                or_(
                    AuditEntry.actor_label.icontains(self.who, autoescape=True),
                    AuditEntry.actor_id == self.who,
                )
            )
        if self.actor_type:
            stmt = stmt.where(AuditEntry.actor_type == self.actor_type)
        if self.action:
            stmt = stmt.where(AuditEntry.action.startswith(self.action, autoescape=True))
        if self.subject_type:
            stmt = stmt.where(AuditEntry.target_type == self.subject_type)
        if self.subject_id:
            stmt = stmt.where(AuditEntry.target_id == self.subject_id)
        start = self._bound(self.date_from, end=False)
        if start is not None:
            stmt = stmt.where(AuditEntry.at >= start)
        end = self._bound(self.date_to, end=True)
        if end is not None:
            stmt = stmt.where(AuditEntry.at < end)
        return stmt

    def statement(self) -> Select[Any]:
        return self.apply(select(AuditEntry))

    def query(self) -> str:
        """The filter as a query string (without the ``?``), for pager and export links."""
        return urlencode({k: v for k, v in asdict(self).items() if v})

    def as_details(self) -> dict[str, str]:
        """The filter for an audit entry (only the fields that were set)."""
        return {k: v for k, v in asdict(self).items() if v}
