"""The Runs list: failed and stuck runs first, then the rest, newest entry first, by keyset.

Each part pages on ``(entered_at, id)`` descending, so page 1 000 costs what
page 1 does: the next page starts after the last row shown (the cursor), on
the indexes of migration 0017, never at an offset. Counts stop at
``COUNT_LIMIT``: counting every row of a large table on each page view is the
slow query the keyset avoids.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, func, not_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.flows.runfilter import Attention
from backend.flows.runs import node_labels
from backend.models import Contact, Flow, FlowVersion, Journey

COUNT_LIMIT = 10_000
ATTENTION, REST = "a", "r"


class BadCursor(ValueError):
    """A page link that was not made by this list (edited by hand, or truncated)."""


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: after this row (or, without one, at the top) of this part."""

    part: str
    entered_at: datetime | None = None
    id: int | None = None

    def __str__(self) -> str:
        if self.entered_at is None:
            return self.part
        micros = int(self.entered_at.timestamp() * 1_000_000)
        return f"{self.part}.{micros}.{self.id}"

    @classmethod
    def parse(cls, text: str) -> Cursor | None:
        if not text:
            return None
        if text in (ATTENTION, REST):
            return cls(text)
        try:
            part, micros, ident = text.split(".")
            if part not in (ATTENTION, REST):
                raise ValueError(part)
            at = datetime.fromtimestamp(int(micros) / 1_000_000, UTC)
            return cls(part, at, int(ident))
        except (ValueError, OverflowError, OSError):
            raise BadCursor(text) from None


@dataclass(frozen=True)
class RunRow:
    journey: Journey
    flow_name: str
    version: int
    email: str | None
    name: str
    node_label: str
    attention: bool

    @property
    def customer(self) -> str:
        journey = self.journey
        visitor = f"visitor {journey.visitor_id}" if journey.visitor_id else ""
        return self.email or self.name or visitor


async def _fetch(
    db: AsyncSession,
    where: Sequence[ColumnElement[bool]],
    after: Cursor | None,
    limit: int,
    attention: bool,
) -> list[RunRow]:
    conditions = list(where)
    if after is not None and after.entered_at is not None:
        conditions.append(
            tuple_(Journey.entered_at, Journey.id) < tuple_(after.entered_at, after.id)
        )
    found = (
        await db.execute(
            select(
                Journey,
                Flow.name,
                FlowVersion.number,
                Contact.email,
                Contact.first_name,
                Contact.last_name,
            )
            .join(Flow, Flow.id == Journey.flow_id)
            .join(FlowVersion, FlowVersion.id == Journey.flow_version_id)
            .outerjoin(Contact, Contact.id == Journey.contact_id)
            .where(*conditions)
            .order_by(Journey.entered_at.desc(), Journey.id.desc())
            .limit(limit)
        )
    ).all()
    labels = await node_labels(db, {row[0].flow_version_id for row in found})
    return [
        RunRow(
            journey=journey,
            flow_name=flow_name,
            version=number,
            email=email,
            name=f"{first or ''} {last or ''}".strip(),
            node_label=labels.get((journey.flow_version_id, journey.node_id), ""),
            attention=attention,
        )
        for journey, flow_name, number, email, first, last in found
    ]


async def _first_part(
    db: AsyncSession,
    where: Sequence[ColumnElement[bool]],
    attention: Attention,
    after: Cursor | None,
    limit: int,
) -> list[RunRow]:
    """The newest ``limit`` runs needing attention: each part fetched on its index, merged."""
    found: dict[int, RunRow] = {}
    for part in attention.parts:
        for row in await _fetch(db, [*where, part], after, limit, True):
            found[row.journey.id] = row
    ordered = sorted(found.values(), key=lambda r: (r.journey.entered_at, r.journey.id))
    return ordered[::-1][:limit]


async def runs_page(
    db: AsyncSession,
    where: Sequence[ColumnElement[bool]],
    attention: Attention,
    size: int,
    after: Cursor | None,
) -> tuple[list[RunRow], Cursor | None]:
    """One page of runs matching ``where`` and the cursor of the next page (None: last page)."""
    rows: list[RunRow] = []
    if after is None or after.part == ATTENTION:
        rows = await _first_part(db, where, attention, after, size + 1)
        if len(rows) > size:
            rows = rows[:size]
            last = rows[-1].journey
            return rows, Cursor(ATTENTION, last.entered_at, last.id)
        after = None
    rest = await _fetch(db, [*where, not_(attention.any)], after, size - len(rows) + 1, False)
    if len(rows) + len(rest) <= size:
        return rows + rest, None
    if len(rows) == size:
        return rows, Cursor(REST)
    rows += rest[: size - len(rows)]
    last = rows[-1].journey
    return rows, Cursor(REST, last.entered_at, last.id)


async def count_runs(db: AsyncSession, where: Sequence[ColumnElement[bool]]) -> int:
    """How many runs match, counted up to ``COUNT_LIMIT + 1`` ("more than 10 000")."""
    capped = select(Journey.id).where(*where).limit(COUNT_LIMIT + 1).subquery()
    return await db.scalar(select(func.count()).select_from(capped)) or 0


async def count_attention(
    db: AsyncSession, where: Sequence[ColumnElement[bool]], attention: Attention
) -> int:
    """How many matching runs need attention: each part less the ones before it."""
    total = 0
    for index, part in enumerate(attention.parts):
        earlier = [not_(other) for other in attention.parts[:index]]
        total += await count_runs(db, [*where, part, *earlier])
    return total


async def matching_ids(
    db: AsyncSession, where: Sequence[ColumnElement[bool]], limit: int
) -> list[int]:
    """Ids of up to ``limit`` matching runs, newest entry first (for bulk actions)."""
    query = (
        select(Journey.id)
        .where(*where)
        .order_by(Journey.entered_at.desc(), Journey.id.desc())
        .limit(limit)
    )
    return list(await db.scalars(query))


async def iterate_runs(
    sessions: async_sessionmaker[AsyncSession],
    where: Sequence[ColumnElement[bool]],
    attention: Attention,
    batch: int = 500,
) -> AsyncIterator[list[RunRow]]:
    """Every matching run, in list order, a keyset batch per short-lived session."""
    after: Cursor | None = None
    while True:
        async with sessions() as db:
            rows, after = await runs_page(db, where, attention, batch, after)
        if rows:
            yield rows
        if after is None:
            return
