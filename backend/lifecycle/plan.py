"""Phases and processes of the workspace: the default set, the B2B template, and their edits.

Nothing here deletes: a phase or process is retired, and only when nothing
live still sits in it, so a plan never loses a touchpoint or a flow silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.i18n import N_, _
from backend.models import (
    Flow,
    FlowStatus,
    LifecyclePhase,
    LifecyclePhaseRow,
    LifecycleProcess,
    LifecycleSettings,
    Touchpoint,
    TouchpointStatus,
    utcnow,
)

NAME_MAX = 120
Ordered = LifecyclePhaseRow | LifecycleProcess

# (name, the flows' coarse phase it maps to); names are stored as typed, so marked only.
DEFAULT_PHASES = [
    (N_("Attract & convert"), LifecyclePhase.attract),
    (N_("Welcome"), LifecyclePhase.onboard),
    (N_("Engage & develop"), LifecyclePhase.engage),
    (N_("Retain"), LifecyclePhase.retain),
    (N_("Exit"), LifecyclePhase.exit),
]
B2B_PHASES = [
    (N_("Not yet active"), LifecyclePhase.attract),
    (N_("Trigger"), LifecyclePhase.attract),
    (N_("Initial interest"), LifecyclePhase.attract),
    (N_("Active evaluation"), LifecyclePhase.attract),
    (N_("Purchase decision"), LifecyclePhase.onboard),
    (N_("Experience"), LifecyclePhase.engage),
    (N_("Loyalty"), LifecyclePhase.retain),
]
TEMPLATES = {"default": DEFAULT_PHASES, "b2b": B2B_PHASES}


class PlanError(Exception):
    """A refused change to the plan, with a sentence for the person who asked."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class PhaseView:
    phase: LifecyclePhaseRow
    processes: list[LifecycleProcess] = field(default_factory=list)


async def ensure_workspace(db: AsyncSession) -> LifecycleSettings:
    """The settings row, creating it and the default phases on first use.

    The settings row (fixed id 1) is the seed's lock: of two first visitors at
    once, only the one whose insert wins adds the phases.
    """
    found = await db.get(LifecycleSettings, 1)
    if found is not None:
        return found
    settings = LifecycleSettings(id=1, horizon_1_months=6, horizon_2_months=12, horizon_3_months=24)
    try:
        async with db.begin_nested():
            db.add(settings)
            await db.flush()
    except IntegrityError:
        again = await db.get(LifecycleSettings, 1)
        assert again is not None
        return again
    if not await db.scalar(select(func.count()).select_from(LifecyclePhaseRow)):
        await _add_phases(db, DEFAULT_PHASES, start=0)
    return settings


async def _add_phases(
    db: AsyncSession, phases: list[tuple[str, LifecyclePhase]], start: int
) -> list[LifecyclePhaseRow]:
    rows = [
        LifecyclePhaseRow(name=name, flow_phase=flow_phase.value, position=start + index)
        for index, (name, flow_phase) in enumerate(phases)
    ]
    db.add_all(rows)
    await db.flush()
    return rows


async def apply_template(db: AsyncSession, template: str) -> list[LifecyclePhaseRow]:
    """Add a template's phases after the existing ones (a team retires the ones it drops)."""
    if template not in TEMPLATES:
        raise PlanError(_("Choose the default or the B2B template."))
    last = await db.scalar(select(func.max(LifecyclePhaseRow.position)))
    return await _add_phases(db, TEMPLATES[template], start=(last or 0) + 1)


async def load_plan(db: AsyncSession, *, include_retired: bool = False) -> list[PhaseView]:
    """Phases in order, each with its processes in order."""
    phase_query = select(LifecyclePhaseRow).order_by(
        LifecyclePhaseRow.position, LifecyclePhaseRow.id
    )
    process_query = select(LifecycleProcess).order_by(
        LifecycleProcess.position, LifecycleProcess.id
    )
    if not include_retired:
        phase_query = phase_query.where(LifecyclePhaseRow.retired_at.is_(None))
        process_query = process_query.where(LifecycleProcess.retired_at.is_(None))
    views = {phase.id: PhaseView(phase) for phase in await db.scalars(phase_query)}
    for process in await db.scalars(process_query):
        if process.phase_id in views:
            views[process.phase_id].processes.append(process)
    return list(views.values())


def clean_name(raw: str) -> str:
    name = " ".join(raw.split())
    if not name:
        raise PlanError(_("Give it a name."))
    if len(name) > NAME_MAX:
        raise PlanError(_("Keep the name under %(num)d characters.") % {"num": NAME_MAX})
    return name


async def get_phase(db: AsyncSession, phase_id: int) -> LifecyclePhaseRow:
    phase = await db.get(LifecyclePhaseRow, phase_id)
    if phase is None:
        raise PlanError(_("There is no phase with this number."), status=404)
    return phase


async def get_process(db: AsyncSession, process_id: int) -> LifecycleProcess:
    process = await db.get(LifecycleProcess, process_id)
    if process is None:
        raise PlanError(_("There is no process with this number."), status=404)
    return process


async def add_phase(db: AsyncSession, name: str, flow_phase: str) -> LifecyclePhaseRow:
    try:
        coarse = LifecyclePhase(flow_phase)
    except ValueError:
        raise PlanError(_("Choose which kind of flows this phase holds.")) from None
    last = await db.scalar(select(func.max(LifecyclePhaseRow.position)))
    phase = LifecyclePhaseRow(
        name=clean_name(name), flow_phase=coarse.value, position=(last or 0) + 1
    )
    db.add(phase)
    await db.flush()
    return phase


async def add_process(db: AsyncSession, phase_id: int, name: str) -> LifecycleProcess:
    phase = await get_phase(db, phase_id)
    if phase.retired_at is not None:
        raise PlanError(_("This phase is retired; bring it back before adding processes."))
    last = await db.scalar(
        select(func.max(LifecycleProcess.position)).where(LifecycleProcess.phase_id == phase.id)
    )
    process = LifecycleProcess(phase_id=phase.id, name=clean_name(name), position=(last or 0) + 1)
    db.add(process)
    await db.flush()
    return process


async def move_phase(db: AsyncSession, phase_id: int, offset: int) -> None:
    """Swap a phase with its neighbour before (-1) or after (+1) it."""
    plan = [view.phase for view in await load_plan(db)]
    _swap(plan, phase_id, offset)


async def move_process(db: AsyncSession, process_id: int, offset: int) -> None:
    process = await get_process(db, process_id)
    siblings = list(
        await db.scalars(
            select(LifecycleProcess)
            .where(
                LifecycleProcess.phase_id == process.phase_id,
                LifecycleProcess.retired_at.is_(None),
            )
            .order_by(LifecycleProcess.position, LifecycleProcess.id)
        )
    )
    _swap(siblings, process_id, offset)


def _swap(rows: Sequence[Ordered], row_id: int, offset: int) -> None:
    ids = [row.id for row in rows]
    if row_id not in ids or offset not in (-1, 1):
        raise PlanError(_("That cannot be moved there."))
    index = ids.index(row_id)
    other = index + offset
    order = list(rows)
    if 0 <= other < len(order):
        order[index], order[other] = order[other], order[index]
    for position, row in enumerate(order):
        row.position = position


async def _live_touchpoints(db: AsyncSession, *where: object) -> int:
    count = await db.scalar(
        select(func.count())
        .select_from(Touchpoint)
        .join(LifecycleProcess, LifecycleProcess.id == Touchpoint.process_id)
        .where(Touchpoint.status != TouchpointStatus.retired.value, *where)  # type: ignore[arg-type]
    )
    return int(count or 0)


async def _live_flows(db: AsyncSession, *where: object) -> int:
    count = await db.scalar(
        select(func.count())
        .select_from(Flow)
        .join(LifecycleProcess, LifecycleProcess.id == Flow.process_id)
        .where(Flow.status != FlowStatus.archived.value, *where)  # type: ignore[arg-type]
    )
    return int(count or 0)


async def _refuse_if_in_use(db: AsyncSession, name: str, where: object) -> None:
    """A phase or process still holding live touchpoints or unarchived flows cannot retire."""
    touchpoints = await _live_touchpoints(db, where)
    flows = await _live_flows(db, where)
    if touchpoints or flows:
        raise PlanError(
            _(
                "“%(name)s” still holds %(touchpoints)d touchpoints and %(flows)d flows: "
                "move or retire them first."
            )
            % {"name": name, "touchpoints": touchpoints, "flows": flows},
            status=409,
        )


async def retire_process(db: AsyncSession, process_id: int) -> LifecycleProcess:
    """Retire a process that holds no live touchpoint and no unarchived flow."""
    process = await get_process(db, process_id)
    await _refuse_if_in_use(db, process.name, LifecycleProcess.id == process.id)
    process.retired_at = utcnow()
    return process


async def retire_phase(db: AsyncSession, phase_id: int) -> LifecyclePhaseRow:
    """Retire a phase whose processes hold nothing live; its empty processes retire with it."""
    phase = await get_phase(db, phase_id)
    await _refuse_if_in_use(db, phase.name, LifecycleProcess.phase_id == phase.id)
    now = utcnow()
    phase.retired_at = now
    for process in await db.scalars(
        select(LifecycleProcess).where(
            LifecycleProcess.phase_id == phase.id, LifecycleProcess.retired_at.is_(None)
        )
    ):
        process.retired_at = now
    return phase


async def restore(db: AsyncSession, phase_id: int | None, process_id: int | None) -> None:
    """Bring a retired phase or process back."""
    if phase_id is not None:
        (await get_phase(db, phase_id)).retired_at = None
    if process_id is not None:
        process = await get_process(db, process_id)
        process.retired_at = None
        (await get_phase(db, process.phase_id)).retired_at = None


async def rename(db: AsyncSession, phase_id: int | None, process_id: int | None, name: str) -> str:
    new = clean_name(name)
    if phase_id is not None:
        (await get_phase(db, phase_id)).name = new
    if process_id is not None:
        (await get_process(db, process_id)).name = new
    return new
