"""Which lifecycle process a flow carries out: the picker's choices and the change itself.

Choosing a process also moves the flow into that process's phase (the flows'
coarse phase its lifecycle phase maps to), so a flow never sits in one phase
while its process sits in another. The rule is documented in docs/lifecycle.md.
This reads the plan's tables directly so the flows pages need nothing from the
lifecycle pages' package.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.i18n import _
from backend.models import Flow, FlowStatus, LifecyclePhaseRow, LifecycleProcess


class ProcessChoiceError(Exception):
    """A process that cannot be chosen, with a sentence for the person who chose it."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ProcessOption:
    id: int
    name: str
    phase_name: str
    flow_phase: str
    retired: bool


@dataclass
class ProcessGroup:
    """One phase of the plan and the processes a flow can be put in."""

    phase_name: str
    options: list[ProcessOption] = field(default_factory=list)


async def process_options(db: AsyncSession) -> dict[int, ProcessOption]:
    """Every process, retired ones too (a flow may still sit in one), in plan order."""
    rows = await db.execute(
        select(LifecycleProcess, LifecyclePhaseRow)
        .join(LifecyclePhaseRow, LifecyclePhaseRow.id == LifecycleProcess.phase_id)
        .order_by(
            LifecyclePhaseRow.position,
            LifecyclePhaseRow.id,
            LifecycleProcess.position,
            LifecycleProcess.id,
        )
    )
    return {
        process.id: ProcessOption(
            id=process.id,
            name=process.name,
            phase_name=phase.name,
            flow_phase=phase.flow_phase,
            retired=process.retired_at is not None or phase.retired_at is not None,
        )
        for process, phase in rows
    }


def group_options(options: dict[int, ProcessOption], keep: int | None = None) -> list[ProcessGroup]:
    """The picker's groups: live processes by phase, plus ``keep`` (the current one) if retired."""
    groups: dict[str, ProcessGroup] = {}
    for option in options.values():
        if option.retired and option.id != keep:
            continue
        groups.setdefault(option.phase_name, ProcessGroup(option.phase_name)).options.append(option)
    return list(groups.values())


def parse_process_id(raw: str) -> int | None:
    """The picker's value: empty means no process."""
    if not raw.strip():
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ProcessChoiceError(_("Choose one of the processes in the list.")) from None
    if not 0 < value < 2**63:
        raise ProcessChoiceError(_("Choose one of the processes in the list."))
    return value


async def chosen_process(db: AsyncSession, process_id: int | None) -> ProcessOption | None:
    """The process a new choice names, refused if it is unknown or retired."""
    if process_id is None:
        return None
    option = (await process_options(db)).get(process_id)
    if option is None:
        raise ProcessChoiceError(_("There is no process with this number."))
    if option.retired:
        raise ProcessChoiceError(
            _("The process “%(name)s” is retired; bring it back on the Lifecycle page first.")
            % {"name": option.name}
        )
    return option


async def set_flow_process(
    db: AsyncSession, flow: Flow, process_id: int | None
) -> dict[str, object] | None:
    """Put ``flow`` in a process (and that process's phase); returns what changed, for the audit."""
    if flow.status == FlowStatus.archived.value:
        raise ProcessChoiceError(_("An archived flow cannot be changed."), status=409)
    if process_id == flow.process_id:
        return None
    option = await chosen_process(db, process_id)
    changed: dict[str, object] = {"process": [flow.process_id, process_id]}
    flow.process_id = process_id
    if option is not None and option.flow_phase != flow.phase:
        changed["phase"] = [flow.phase, option.flow_phase]
        flow.phase = option.flow_phase
    await db.flush()
    return changed
