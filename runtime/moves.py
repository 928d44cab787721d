"""Moving running journeys onto a flow's newest version (DESIGN principle 7: only on request).

Publishing leaves every live journey on the version it started; a marketer
may instead move them to the new version. A journey can move only when the
node it stands on exists in the new graph under the same id *and* the same
type: a waiting journey then still waits for what that node waits for, and
its next step runs the new node's config. Journeys whose node is gone (or
became another type) stay on their version and are counted, so the
marketer sees how many. So are journeys a worker holds right now (an
unexpired lease): the worker writes their next step against the version it
loaded, and the claim check in the journal would not see a version change.
A claim writes its lease row while it holds the journey row locked, and an
UPDATE that waited for such a lock does not look at the lease again; so on
PostgreSQL the move first locks the journeys it may move, and only then, in a
statement that sees every claim committed meanwhile, skips the held ones.

``plan`` counts without changing anything (the publish dialog shows it);
``move_journeys`` moves with one UPDATE per older version, in the caller's
transaction, and returns the fact (a ``Move`` naming the version) for
the caller to record: the web layer writes it to its audit log with the
person who asked, in that same transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from runtime.models import FlowVersion, Journey
from runtime.models.journeys import LIVE_STATUSES
from runtime.sql import among, dialect_name

__all__ = ["Move", "move_journeys", "node_types", "plan"]


@dataclass(frozen=True)
class Move:
    """How many live journeys (would) move to the target version, and why the others stay."""

    moved: int = 0
    # Journeys that stay on their version: node id -> how many stand on it there.
    missing: Mapping[str, int] = field(default_factory=dict)
    busy: int = 0  # held by a worker at this moment
    version: int | None = None  # the number of the version they moved to

    @property
    def staying(self) -> int:
        return sum(self.missing.values()) + self.busy

    def details(self) -> dict[str, Any]:
        """The audit entry's details (JSON)."""
        details: dict[str, Any] = {}
        if self.version is not None:
            details["version"] = self.version
        return details | {"moved": self.moved, "missing": dict(self.missing), "busy": self.busy}


def node_types(graph: Mapping[str, Any]) -> dict[str, str]:
    """Node id -> node type of a graph as stored (draft or version JSON)."""
    return {
        str(n["id"]): str(n.get("type"))
        for n in graph.get("nodes", [])
        if isinstance(n, Mapping) and "id" in n
    }


def _held(now: datetime) -> Any:
    return and_(Journey.lease_owner.is_not(None), Journey.lease_until > now)


async def _movable_nodes(
    session: AsyncSession, flow_id: int, target: Mapping[str, str], exclude: int | None
) -> dict[int, list[str]]:
    """Older version id -> node ids whose id and type are the same in ``target``."""
    stmt = select(FlowVersion.id, FlowVersion.graph).where(FlowVersion.flow_id == flow_id)
    if exclude is not None:
        stmt = stmt.where(FlowVersion.id != exclude)
    movable: dict[int, list[str]] = {}
    for version_id, graph in await session.execute(stmt):
        same = [nid for nid, kind in node_types(graph).items() if target.get(nid) == kind]
        if same:
            movable[version_id] = same
    return movable


def _live(flow_id: int, exclude: int | None) -> list[Any]:
    where = [Journey.flow_id == flow_id, Journey.status.in_(LIVE_STATUSES)]
    if exclude is not None:
        where.append(Journey.flow_version_id != exclude)
    return where


async def plan(
    session: AsyncSession,
    flow_id: int,
    graph: Mapping[str, Any],
    *,
    now: datetime,
    current: int | None = None,
) -> Move:
    """What ``move_journeys`` would do if ``graph`` were published now; nothing changes.

    ``current`` is the version id ``graph`` already is (its journeys are not
    counted); None counts every live journey, as before publishing a draft.
    """
    movable = await _movable_nodes(session, flow_id, node_types(graph), current)
    return await _count(session, flow_id, movable, current, now)


async def _count(
    session: AsyncSession,
    flow_id: int,
    movable: Mapping[int, list[str]],
    current: int | None,
    now: datetime,
) -> Move:
    """One grouped count of the live journeys, split into movable, held and missing."""
    held = func.sum(case((_held(now), 1), else_=0))
    rows = await session.execute(
        select(Journey.flow_version_id, Journey.node_id, func.count(), held)
        .where(*_live(flow_id, current))
        .group_by(Journey.flow_version_id, Journey.node_id)
    )
    moved = busy = 0
    missing: Counter[str] = Counter()
    for version_id, node_id, count, holding in rows:
        if node_id not in movable.get(version_id, ()):
            missing[node_id] += count
        else:
            busy += int(holding or 0)
            moved += count - int(holding or 0)
    return Move(moved, dict(missing), busy)


async def move_journeys(
    session: AsyncSession,
    flow_id: int,
    version_id: int,
    *,
    now: datetime,
) -> Move:
    """Move the flow's live journeys on older versions to ``version_id`` where their node fits.

    Runs in the caller's transaction (lock the flow first, as publishing
    does, so no version is published meanwhile). Returns what moved and what
    stayed, for the caller to record (``Move.details``).
    """
    version = await session.get(FlowVersion, version_id)
    if version is None or version.flow_id != flow_id:
        raise LookupError(f"Flow {flow_id} has no version with id {version_id}.")
    movable = await _movable_nodes(session, flow_id, node_types(version.graph), version_id)
    before = await _count(session, flow_id, movable, version_id, now)
    moved = 0
    for old_id, node_ids in movable.items():
        candidates = (
            *_live(flow_id, None),
            Journey.flow_version_id == old_id,
            among(session, Journey.node_id, node_ids),
        )
        if dialect_name(session) == "postgresql":
            await session.execute(
                select(Journey.id).where(*candidates).with_for_update(key_share=True)
            )
        result = await session.execute(
            update(Journey)
            .where(*candidates, ~_held(now))
            .values(flow_version_id=version_id, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        moved += result.rowcount  # type: ignore[attr-defined]
    # A journey that a worker claimed or released between the count and the move
    # changes the split; the counts reported are the ones the UPDATEs produced.
    return Move(moved, before.missing, max(0, before.busy + before.moved - moved), version.number)
