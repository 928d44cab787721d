"""Flow lifecycle: create, save drafts, publish frozen versions, pause, resume, archive.

The editor and the web app call these inside their own transaction (the
caller commits). Publishing validates the draft with the node registry and
freezes it as a new ``FlowVersion``; running journeys keep the version they
started on (DESIGN principle 7).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nodes.sdk import NodeRegistry
from runtime.graph import FlowSettings, parse_graph
from runtime.models import Flow, FlowStatus, FlowVersion, Journey, JourneyStatus, utcnow
from runtime.models.journeys import LIVE_STATUSES
from runtime.sql import close_open_steps
from runtime.versions import node_origins

__all__ = [
    "DraftConflict",
    "FlowNotFound",
    "FlowStateError",
    "archive",
    "create_flow",
    "get_flow",
    "pause",
    "publish",
    "resume",
    "save_draft",
]


class FlowNotFound(LookupError):
    def __init__(self, flow_id: int) -> None:
        super().__init__(f"Flow {flow_id} does not exist.")
        self.flow_id = flow_id


class DraftConflict(RuntimeError):
    """Someone saved the draft since this editor loaded it."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(
            "This flow was changed by someone else since you opened it. "
            "Reload to see their changes."
        )
        self.expected = expected
        self.actual = actual


class FlowStateError(RuntimeError):
    """The action does not apply to the flow in its current status."""


async def get_flow(session: AsyncSession, flow_id: int, *, lock: bool = False) -> Flow:
    """The flow, or ``FlowNotFound``. ``lock`` holds its row until the transaction ends.

    A locked read also refreshes a ``Flow`` this session loaded earlier: checks
    made under the lock (the draft revision) must see the row as it is now,
    not as the identity map first saw it.
    """
    stmt = select(Flow).where(Flow.id == flow_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    flow = (await session.execute(stmt)).scalar_one_or_none()
    if flow is None:
        raise FlowNotFound(flow_id)
    return flow


async def create_flow(
    session: AsyncSession,
    name: str,
    *,
    graph: dict[str, Any] | None = None,
    description: str = "",
    phase: str = "attract",
    user_id: int | None = None,
) -> Flow:
    """Create a flow in draft status. The draft may be incomplete; publishing checks it."""
    flow = Flow(
        name=name,
        description=description,
        phase=phase,
        status=FlowStatus.draft.value,
        draft_graph=graph or {"nodes": [], "edges": []},
        draft_revision=0,
        created_by_id=user_id,
    )
    session.add(flow)
    await session.flush()
    return flow


async def save_draft(
    session: AsyncSession,
    flow_id: int,
    graph: dict[str, Any],
    *,
    expected_revision: int | None = None,
) -> Flow:
    """Store an edited draft; with ``expected_revision`` refuse to overwrite a newer save."""
    flow = await get_flow(session, flow_id, lock=True)
    if flow.status == FlowStatus.archived.value:
        raise FlowStateError("An archived flow cannot be edited.")
    if expected_revision is not None and expected_revision != flow.draft_revision:
        raise DraftConflict(expected_revision, flow.draft_revision)
    flow.draft_graph = graph
    flow.draft_revision += 1
    await session.flush()
    return flow


async def publish(
    session: AsyncSession,
    flow_id: int,
    registry: NodeRegistry,
    user_id: int | None = None,
    *,
    note: str = "",
) -> FlowVersion:
    """Validate the draft and freeze it as the flow's next version; the flow becomes active.

    Raises ``runtime.graph.InvalidGraph`` (with one error per problem, naming
    the node) when the draft cannot run. A paused flow stays paused.
    """
    flow = await get_flow(session, flow_id, lock=True)
    if flow.status == FlowStatus.archived.value:
        raise FlowStateError("An archived flow cannot be published.")
    graph = parse_graph(flow.draft_graph, registry)
    last = await session.scalar(
        select(func.max(FlowVersion.number)).where(FlowVersion.flow_id == flow_id)
    )
    version = FlowVersion(
        flow_id=flow_id,
        number=(last or 0) + 1,
        graph=graph.model_dump(mode="json"),
        node_origins=node_origins(graph, registry),
        note=note,
        published_by_id=user_id,
    )
    session.add(version)
    await session.flush()
    flow.published_version_id = version.id
    if flow.status == FlowStatus.draft.value:
        flow.status = FlowStatus.active.value
    await session.flush()
    return version


async def pause(session: AsyncSession, flow_id: int) -> Flow:
    """Stop enrolling and hold every journey where it is until ``resume``."""
    flow = await get_flow(session, flow_id, lock=True)
    if flow.status != FlowStatus.active.value:
        raise FlowStateError("Only an active flow can be paused.")
    flow.status = FlowStatus.paused.value
    await session.flush()
    return flow


async def resume(session: AsyncSession, flow_id: int) -> Flow:
    """Let held journeys continue (those whose time came meanwhile run at once)."""
    flow = await get_flow(session, flow_id, lock=True)
    if flow.status != FlowStatus.paused.value:
        raise FlowStateError("Only a paused flow can be resumed.")
    flow.status = FlowStatus.active.value
    await session.flush()
    return flow


async def archive(session: AsyncSession, flow_id: int, *, now: datetime | None = None) -> int:
    """Archive the flow: nobody enters again, and live journeys exit with "flow_stopped".

    Journeys on a version whose exit rules leave out "flow_stopped" are allowed
    to finish their path. Returns how many journeys exited.
    """
    now = now or utcnow()
    flow = await get_flow(session, flow_id, lock=True)
    if flow.status == FlowStatus.archived.value:
        return 0
    flow.status = FlowStatus.archived.value
    versions = await session.execute(
        select(FlowVersion.id, FlowVersion.graph).where(FlowVersion.flow_id == flow_id)
    )
    stopping = [
        vid
        for vid, graph in versions
        if "flow_stopped" in FlowSettings.model_validate(graph.get("settings") or {}).exit_on
    ]
    exited = 0
    if stopping:
        stopped = select(Journey.id).where(
            Journey.flow_version_id.in_(stopping), Journey.status.in_(LIVE_STATUSES)
        )
        await close_open_steps(session, stopped, "flow_stopped", now)
        result = await session.execute(
            update(Journey)
            .where(Journey.flow_version_id.in_(stopping), Journey.status.in_(LIVE_STATUSES))
            .values(
                status=JourneyStatus.exited.value,
                exit_reason="flow_stopped",
                ended_at=now,
                updated_at=now,
                due_at=None,
                wait_event_type=None,
                wait_match=None,
                entry_key=None,
                lease_owner=None,
                lease_until=None,
            )
            .execution_options(synchronize_session=False)
        )
        exited = result.rowcount  # type: ignore[attr-defined]
    await session.flush()
    return exited
