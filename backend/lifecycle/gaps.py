"""The gap analysis: per phase and process, the customer's touchpoints against the company's.

Deciding is pure (``analyse`` over cards and the set of cards with a live
flow); ``load_gaps`` only reads the rows. Retired cards take no part.

- a customer-interest card is *met* when a live company-side card (today or
  company interest) answers it;
- a company-side card is *asked for* when it answers a live customer card;
- an automated card is *live* when one of its linked flows is active;
- a manual card *could be automated* when one of its channels is one a flow sends on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.lifecycle.plan import load_plan
from backend.lifecycle.touchpoints import AUTOMATABLE_CHANNELS
from backend.models import (
    Flow,
    FlowStatus,
    LifecycleProcess,
    Touchpoint,
    TouchpointCategory,
    TouchpointLink,
    TouchpointStatus,
)

COMPANY_SIDE = frozenset({TouchpointCategory.today.value, TouchpointCategory.company.value})


def percent(part: int, whole: int) -> int | None:
    """Rounded percentage, ``None`` when there is nothing to measure."""
    return None if whole == 0 else round(100 * part / whole)


@dataclass
class Gaps:
    """The numbers and the cards behind them, for one process, one phase, or everything."""

    label: str
    unmet: list[Touchpoint] = field(default_factory=list)
    met: list[Touchpoint] = field(default_factory=list)
    unasked: list[Touchpoint] = field(default_factory=list)
    asked: list[Touchpoint] = field(default_factory=list)
    automated_dead: list[Touchpoint] = field(default_factory=list)
    automated_live: list[Touchpoint] = field(default_factory=list)
    could_automate: list[Touchpoint] = field(default_factory=list)
    manual: list[Touchpoint] = field(default_factory=list)

    @property
    def customer_total(self) -> int:
        return len(self.met) + len(self.unmet)

    @property
    def company_total(self) -> int:
        return len(self.asked) + len(self.unasked)

    @property
    def automated_total(self) -> int:
        return len(self.automated_live) + len(self.automated_dead)

    @property
    def customer_coverage(self) -> int | None:
        """Share of customer-interest touchpoints that a company touchpoint meets."""
        return percent(len(self.met), self.customer_total)

    @property
    def company_relevance(self) -> int | None:
        """Share of company touchpoints that answer something a customer wants."""
        return percent(len(self.asked), self.company_total)

    @property
    def automation_live(self) -> int | None:
        """Share of touchpoints marked automated that an active flow carries out."""
        return percent(len(self.automated_live), self.automated_total)


def analyse(
    label: str, cards: Iterable[Touchpoint], everyone: dict[int, Touchpoint], live: set[int]
) -> Gaps:
    """Classify ``cards``; ``everyone`` holds every live card (answers may cross processes)."""
    answered = {
        card.answers_id
        for card in everyone.values()
        if card.category in COMPANY_SIDE and card.answers_id is not None
    }
    gaps = Gaps(label)
    for card in cards:
        if card.status == TouchpointStatus.retired.value:
            continue
        if card.category == TouchpointCategory.customer.value:
            (gaps.met if card.id in answered else gaps.unmet).append(card)
        else:
            target = everyone.get(card.answers_id) if card.answers_id is not None else None
            asks = target is not None and target.category == TouchpointCategory.customer.value
            (gaps.asked if asks else gaps.unasked).append(card)
        if card.status == TouchpointStatus.automated.value:
            (gaps.automated_live if card.id in live else gaps.automated_dead).append(card)
        elif card.status == TouchpointStatus.manual.value:
            gaps.manual.append(card)
            if AUTOMATABLE_CHANNELS.intersection(card.channels):
                gaps.could_automate.append(card)
    return gaps


@dataclass
class PhaseGaps:
    phase_id: int
    gaps: Gaps
    processes: list[tuple[int, Gaps]]


@dataclass
class GapReport:
    total: Gaps
    phases: list[PhaseGaps]


async def live_touchpoints(db: AsyncSession) -> set[int]:
    """Ids of the touchpoints linked to at least one active flow."""
    rows = await db.scalars(
        select(TouchpointLink.touchpoint_id)
        .join(Flow, Flow.id == TouchpointLink.flow_id)
        .where(Flow.status == FlowStatus.active.value)
    )
    return set(rows)


async def load_gaps(db: AsyncSession, *, total_label: str) -> GapReport:
    """Gaps of every phase and process in the plan (retired ones left out), and the total."""
    plan = await load_plan(db)
    cards = list(
        await db.scalars(
            select(Touchpoint)
            .join(LifecycleProcess, LifecycleProcess.id == Touchpoint.process_id)
            .where(
                Touchpoint.status != TouchpointStatus.retired.value,
                LifecycleProcess.retired_at.is_(None),
            )
            .order_by(Touchpoint.position, Touchpoint.id)
        )
    )
    everyone = {card.id: card for card in cards}
    live = await live_touchpoints(db)
    by_process: dict[int, list[Touchpoint]] = {}
    for card in cards:
        by_process.setdefault(card.process_id, []).append(card)
    phases = []
    shown: list[Touchpoint] = []
    for view in plan:
        in_phase = [card for process in view.processes for card in by_process.get(process.id, [])]
        shown.extend(in_phase)
        phases.append(
            PhaseGaps(
                view.phase.id,
                analyse(view.phase.name, in_phase, everyone, live),
                [
                    (p.id, analyse(p.name, by_process.get(p.id, []), everyone, live))
                    for p in view.processes
                ],
            )
        )
    return GapReport(analyse(total_label, shown, everyone, live), phases)
