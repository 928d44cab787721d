"""What a board page shows: one process (or every process of a phase) as lanes of cards.

Filters are applied here, after loading: a board holds tens of cards, and
filtering in Python keeps every filter the same on both databases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.i18n import _
from backend.lifecycle.followup import FollowUp, follow_up
from backend.lifecycle.groups import GroupCount, group_counts
from backend.lifecycle.plan import PlanError, ensure_workspace, get_phase, get_process
from backend.lifecycle.touchpoints import (
    CATEGORIES,
    CHANNELS,
    SETTLED,
    STATUSES,
    Horizon,
    audience_label,
    horizon_months,
    horizon_of,
)
from backend.models import LifecyclePhaseRow, LifecycleProcess, Touchpoint

FILTER_KEYS = ("category", "priority", "channel", "status", "owner", "group")


@dataclass(frozen=True)
class Filters:
    category: str = ""
    priority: str = ""
    channel: str = ""
    status: str = ""
    owner: str = ""
    group: str = ""

    @classmethod
    def read(cls, raw: Mapping[str, str]) -> Filters:
        """Unknown values are dropped rather than refused: a stale bookmark still opens."""
        return cls(
            category=raw.get("category", "") if raw.get("category") in CATEGORIES else "",
            priority=raw.get("priority", "") if raw.get("priority") in ("1", "2", "3") else "",
            channel=raw.get("channel", "") if raw.get("channel") in CHANNELS else "",
            status=raw.get("status", "") if raw.get("status") in STATUSES else "",
            owner=(raw.get("owner") or "").strip()[:120],
            group=(raw.get("group") or "").strip()[:120],
        )

    @property
    def active(self) -> bool:
        return any(getattr(self, key) for key in FILTER_KEYS)

    def keep(self, card: Touchpoint) -> bool:
        if self.category and card.category != self.category:
            return False
        if self.priority and str(card.priority) != self.priority:
            return False
        if self.channel and self.channel not in card.channels:
            return False
        if self.status and card.status != self.status:
            return False
        if self.owner and self.owner.casefold() not in card.owner.casefold():
            return False
        return not (self.group and self.group.casefold() not in audience_label(card).casefold())


@dataclass
class CardView:
    card: Touchpoint
    horizon: Horizon
    follow: FollowUp
    audience: str


@dataclass
class Lane:
    process: LifecycleProcess
    cards: list[CardView] = field(default_factory=list)


@dataclass
class HorizonSummary:
    level: int
    months: int
    due: int = 0
    overdue: int = 0


@dataclass
class Board:
    phase: LifecyclePhaseRow
    lanes: list[Lane]
    horizons: list[HorizonSummary]
    total: int
    shown: int
    owners: list[str]
    groups: list[str]
    # With the customer-group filter on: contacts matching each rule-based group now.
    group_counts: list[GroupCount]


async def load_board(
    db: AsyncSession,
    *,
    phase_id: int | None = None,
    process_ids: Sequence[int] = (),
    filters: Filters,
    now: datetime,
) -> Board:
    """The lanes of ``process_ids`` (or, with ``phase_id``, of every live process of the phase)."""
    settings = await ensure_workspace(db)
    months = horizon_months(settings)
    if phase_id is not None:
        phase = await get_phase(db, phase_id)
        processes = list(
            await db.scalars(
                select(LifecycleProcess)
                .where(LifecycleProcess.phase_id == phase.id, LifecycleProcess.retired_at.is_(None))
                .order_by(LifecycleProcess.position, LifecycleProcess.id)
            )
        )
    else:
        processes = [await get_process(db, process_id) for process_id in process_ids]
        if not processes:
            raise PlanError(_("There is no process with this number."), status=404)
        phase = await get_phase(db, processes[0].phase_id)
    lanes = {process.id: Lane(process) for process in processes}
    cards = list(
        await db.scalars(
            select(Touchpoint)
            .where(Touchpoint.process_id.in_(list(lanes)))
            .order_by(Touchpoint.position, Touchpoint.id)
        )
    )
    shown = [card for card in cards if filters.keep(card)]
    follow = await follow_up(db, shown, now)
    summaries = {level: HorizonSummary(level, months[level]) for level in (1, 2, 3)}
    for card in shown:
        horizon = horizon_of(card, months, now)
        lanes[card.process_id].cards.append(
            CardView(card, horizon, follow[card.id], audience_label(card))
        )
        summary = summaries[card.priority]
        if horizon.overdue:
            summary.overdue += 1
        elif card.status not in SETTLED:
            summary.due += 1
    return Board(
        phase=phase,
        lanes=list(lanes.values()),
        horizons=list(summaries.values()),
        total=len(cards),
        shown=len(shown),
        owners=sorted({card.owner for card in cards if card.owner}),
        groups=sorted({label for card in cards if (label := audience_label(card))}),
        group_counts=await group_counts(db, shown, now) if filters.group else [],
    )
