"""The Runs list's filters: read from the query string, checked, and turned into SQL.

Every filter narrows ``journeys`` with a condition one of its indexes serves
(status, flow, flow version, contact, entry time); error text and current node
narrow what those leave. "Needs attention" is failed or stuck: a live run due
long ago (no worker picked it up), one whose worker's lease ran out, or one
held at a step whose node type is not installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from backend.i18n import N_, _
from backend.i18n.formats import zone
from backend.models import Contact, FlowVersion, Journey, JourneyStatus
from runtime.claims import LIVE_SQL
from runtime.versions import VersionCache

# A live run whose due time passed this long ago was missed by every worker and sweep.
STUCK_AFTER = timedelta(minutes=15)
STUCK = "stuck"

JOURNEY_STATUSES = {
    JourneyStatus.active.value: N_("Active"),
    JourneyStatus.waiting.value: N_("Waiting"),
    JourneyStatus.completed.value: N_("Completed"),
    JourneyStatus.exited.value: N_("Exited"),
    JourneyStatus.failed.value: N_("Failed"),
    JourneyStatus.cancelled.value: N_("Cancelled"),
}
FILTER_STATUSES = {**JOURNEY_STATUSES, STUCK: N_("Stuck")}
FILTER_KEYS = ("flow", "version", "contact", "status", "node", "error", "since", "until")


class FilterError(ValueError):
    """A filter value a person typed that cannot be used; the message says why."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


@dataclass(frozen=True)
class RunFilter:
    """The filters as typed (``values``, for the form and links) and as parsed."""

    values: Mapping[str, str] = field(default_factory=dict)
    flow_id: int | None = None
    version: int | None = None
    contact: str = ""
    status: str = ""
    node: str = ""
    error: str = ""
    since: date | None = None
    until: date | None = None

    @property
    def active(self) -> bool:
        return any(self.values.values())


def _int(name: str, text: str, message: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or len(text) > 18:
        raise FilterError(name, message)
    return int(text)


def _day(name: str, text: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise FilterError(name, _("Write the date as year-month-day, e.g. 2026-11-27.")) from None


def parse_filter(query: Mapping[str, Any]) -> tuple[RunFilter, dict[str, str]]:
    """The filter in ``query`` and an error per field that is wrong (those fields are ignored)."""
    values = {key: str(query.get(key) or "").strip()[:200] for key in FILTER_KEYS}
    errors: dict[str, str] = {}
    parsed: dict[str, Any] = {}
    readers: dict[str, Any] = {
        "flow_id": lambda: _int("flow", values["flow"], _("Choose a flow from the list.")),
        "version": lambda: _int("version", values["version"], _("A version is a number.")),
        "since": lambda: _day("since", values["since"]),
        "until": lambda: _day("until", values["until"]),
    }
    for key, read in readers.items():
        try:
            parsed[key] = read()
        except FilterError as exc:
            errors[exc.name] = exc.message
    if parsed.get("version") is not None and parsed.get("flow_id") is None and "flow" not in errors:
        errors["version"] = _("Choose the flow whose version you mean.")
        parsed["version"] = None
    since, until = parsed.get("since"), parsed.get("until")
    if since and until and since > until:
        errors["until"] = _("The end date is before the start date.")
        parsed["until"] = None
    status = values["status"] if values["status"] in FILTER_STATUSES else ""
    if values["status"] and not status:
        errors["status"] = _("Choose a status from the list.")
    return (
        RunFilter(
            values=values,
            contact=values["contact"],
            status=status,
            node=values["node"],
            error=values["error"],
            **parsed,
        ),
        errors,
    )


async def held_nodes(
    db: AsyncSession, versions: VersionCache, version_ids: set[int] | None = None
) -> set[tuple[int, str]]:
    """``(version id, node id)`` of steps whose node type is missing (runs there are held)."""
    query = select(FlowVersion.id)
    if version_ids is not None:
        query = query.where(FlowVersion.id.in_(version_ids))
    ids = set(await db.scalars(query))
    compiled = await versions.get_many(db, ids)
    return {
        (version_id, node_id)
        for version_id, flow in compiled.items()
        for node_id, node in flow.nodes.items()
        if node.held
    }


def _overdue(now: datetime) -> ColumnElement[bool]:
    """Live and due long ago with nobody on it, or held by a lease that ran out.

    A journey a worker is walking keeps its past due time while its lease
    (``journey_leases``) is live: that is work in progress, not stuck, however
    long a slow provider keeps the step. A lease that ran out means the worker
    died mid-step. ``due_at < now`` leads, so the partial index on live runs'
    due times finds these few rows; NULL-safe, since the list's second part
    shows the runs where this is false.
    """
    return and_(
        LIVE_SQL,
        Journey.due_at.is_not(None),
        Journey.due_at < now,
        or_(
            and_(Journey.lease_until.is_not(None), Journey.lease_until < now),
            and_(Journey.due_at < now - STUCK_AFTER, Journey.lease_until.is_(None)),
        ),
    )


def _held(held: set[tuple[int, str]]) -> ColumnElement[bool]:
    """Live at a step whose node type is missing."""
    return and_(LIVE_SQL, tuple_(Journey.flow_version_id, Journey.node_id).in_(sorted(held)))


def stuck_condition(now: datetime, held: set[tuple[int, str]]) -> ColumnElement[bool]:
    """Live and overlooked: due long ago, a lease that ran out, or held at a missing node."""
    return or_(_overdue(now), _held(held)) if held else _overdue(now)


@dataclass(frozen=True)
class Attention:
    """What puts a run first, as separate conditions that each use an index of their own.

    One OR of them would make a database walk every live run; the list fetches
    each part on its own and merges them (``runs_page``).
    """

    parts: tuple[ColumnElement[bool], ...]

    @property
    def any(self) -> ColumnElement[bool]:
        return or_(*self.parts)


def attention(now: datetime, held: set[tuple[int, str]]) -> Attention:
    """The runs shown first: failed, or stuck."""
    parts = [Journey.status == JourneyStatus.failed.value, _overdue(now)]
    if held:
        parts.append(_held(held))
    return Attention(tuple(parts))


def _bounds(run_filter: RunFilter) -> tuple[datetime | None, datetime | None]:
    """The date range as instants: whole days in the reader's time zone."""
    local = zone()
    start = end = None
    if run_filter.since:
        start = datetime.combine(run_filter.since, time(), local)
    if run_filter.until:
        end = datetime.combine(run_filter.until + timedelta(days=1), time(), local)
    return start, end


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def filter_conditions(
    db: AsyncSession, run_filter: RunFilter, now: datetime, held: set[tuple[int, str]]
) -> list[ColumnElement[bool]]:
    """SQL conditions on ``journeys`` for the filter (``false()`` when nothing can match)."""
    where: list[ColumnElement[bool]] = []
    if run_filter.flow_id is not None:
        where.append(Journey.flow_id == run_filter.flow_id)
    if run_filter.version is not None:
        version_id = await db.scalar(
            select(FlowVersion.id).where(
                FlowVersion.flow_id == run_filter.flow_id, FlowVersion.number == run_filter.version
            )
        )
        where.append(Journey.flow_version_id == version_id if version_id else false())
    if run_filter.contact:
        where.append(await _contact_condition(db, run_filter.contact))
    if run_filter.status == STUCK:
        where.append(stuck_condition(now, held))
    elif run_filter.status:
        where.append(Journey.status == run_filter.status)
    if run_filter.node:
        where.append(Journey.node_id == run_filter.node)
    if run_filter.error:
        where.append(func.lower(Journey.last_error).like(_like(run_filter.error), escape="\\"))
    start, end = _bounds(run_filter)
    if start is not None:
        where.append(Journey.entered_at >= start)
    if end is not None:
        where.append(Journey.entered_at < end)
    return where


async def _contact_condition(db: AsyncSession, text: str) -> ColumnElement[bool]:
    """A contact by number, email address or external id."""
    if text.isdigit() and len(text) <= 18:
        found = or_(Contact.id == int(text), Contact.external_id == text)
    elif "@" in text:
        found = func.lower(Contact.email) == text.lower()
    else:
        found = Contact.external_id == text
    ids = list(await db.scalars(select(Contact.id).where(found).limit(100)))
    return Journey.contact_id.in_(ids) if ids else false()
