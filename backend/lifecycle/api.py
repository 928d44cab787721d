"""``/api/v1/lifecycle``: a board's cards, saving one under the revision rule, the gap numbers."""

from __future__ import annotations

from typing import Any

from litestar import get, patch
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.params import JSONBody
from pydantic import BaseModel, Field
from sqlalchemy import select

from backend.api.responses import AUTH, BODY, INPUT, errors
from backend.audit import audited, record
from backend.auth.guards import role
from backend.deps import Actor, Db, Now
from backend.i18n import _
from backend.lifecycle.gaps import Gaps, load_gaps
from backend.lifecycle.plan import PlanError, ensure_workspace, get_process
from backend.lifecycle.touchpoints import Conflict, audience_label, get_card, read_card, update_card
from backend.models import Role, Touchpoint, TouchpointLink
from backend.validation import RowId


class LinkOut(BaseModel):
    flow_id: int
    node_id: str


class TouchpointOut(BaseModel):
    id: int
    process_id: int
    position: int
    title: str
    description: str
    category: str
    channels: list[str]
    customer_group: str
    owner: str
    priority: int
    status: str
    decision: str
    answers_id: int | None
    revision: int
    links: list[LinkOut]


class TouchpointIn(BaseModel):
    """A card's fields; ``revision`` is the one the change was made on."""

    revision: int = Field(ge=1)
    title: str
    category: str
    priority: int = Field(default=2, ge=1, le=3)
    status: str = "idea"
    channels: list[str] = Field(default_factory=list, max_length=20)
    customer_group: str = ""
    owner: str = ""
    description: str = ""
    decision: str = ""


class GapsOut(BaseModel):
    label: str
    customer_total: int
    customer_met: int
    customer_coverage: int | None
    company_total: int
    company_asked: int
    company_relevance: int | None
    automated_total: int
    automated_live: int
    automation_live: int | None
    manual: int
    could_automate: int
    unmet: list[int]


class PhaseGapsOut(BaseModel):
    phase_id: int
    gaps: GapsOut
    processes: dict[int, GapsOut]


class GapReportOut(BaseModel):
    total: GapsOut
    phases: list[PhaseGapsOut]


def _out(card: Touchpoint, links: list[TouchpointLink]) -> TouchpointOut:
    return TouchpointOut(
        id=card.id,
        process_id=card.process_id,
        position=card.position,
        title=card.title,
        description=card.description,
        category=card.category,
        channels=card.channels,
        customer_group=audience_label(card),
        owner=card.owner,
        priority=card.priority,
        status=card.status,
        decision=card.decision,
        answers_id=card.answers_id,
        revision=card.revision,
        links=[LinkOut(flow_id=link.flow_id, node_id=link.node_id) for link in links],
    )


async def _links(db: Db, ids: list[int]) -> dict[int, list[TouchpointLink]]:
    found: dict[int, list[TouchpointLink]] = {card_id: [] for card_id in ids}
    for link in await db.scalars(
        select(TouchpointLink).where(TouchpointLink.touchpoint_id.in_(ids))
    ):
        found[link.touchpoint_id].append(link)
    return found


def _refusal(exc: PlanError) -> HTTPException:
    if exc.status == 404:
        return NotFoundException(exc.message)
    return HTTPException(status_code=exc.status, detail=exc.message)


@get(
    "/lifecycle/processes/{process_id:int}/touchpoints",
    opt=role(Role.viewer),
    responses=errors(*INPUT, 404),
)
async def list_touchpoints(db: Db, process_id: RowId) -> list[TouchpointOut]:
    """A process's cards in timeline order."""
    try:
        process = await get_process(db, process_id)
    except PlanError as exc:
        raise _refusal(exc) from exc
    cards = list(
        await db.scalars(
            select(Touchpoint)
            .where(Touchpoint.process_id == process.id)
            .order_by(Touchpoint.position, Touchpoint.id)
        )
    )
    links = await _links(db, [card.id for card in cards])
    return [_out(card, links[card.id]) for card in cards]


@patch(
    "/lifecycle/touchpoints/{touchpoint_id:int}",
    opt=role(Role.marketer) | audited("touchpoint.updated"),
    responses=errors(*BODY, 404, 409),
)
async def save_touchpoint(
    db: Db, actor: Actor, clock: Now, touchpoint_id: RowId, data: JSONBody[TouchpointIn]
) -> TouchpointOut:
    """Save a card's fields; 409 when it changed since ``revision``."""
    raw: dict[str, Any] = data.model_dump()
    raw["audience"] = raw.pop("customer_group")
    raw["priority"] = str(raw["priority"])
    card = read_card(raw, data.channels)
    if not card.ok:
        raise ClientException(
            status_code=400,
            detail="; ".join(f"{key}: {message}" for key, message in card.errors.items()),
            extra=card.errors,
        )
    try:
        await get_card(db, touchpoint_id)
        saved, changed = await update_card(
            db, touchpoint_id, data.revision, card.values, now=clock.now()
        )
    except PlanError as exc:
        raise _refusal(exc) from exc
    except Conflict as exc:
        raise HTTPException(
            status_code=409, detail=exc.message, extra={"revision": exc.touchpoint.revision}
        ) from exc
    record(db, actor, "touchpoint.updated", saved, {"changed": sorted(changed)})
    return _out(saved, (await _links(db, [saved.id]))[saved.id])


def _gaps_out(gaps: Gaps) -> GapsOut:
    return GapsOut(
        label=gaps.label,
        customer_total=gaps.customer_total,
        customer_met=len(gaps.met),
        customer_coverage=gaps.customer_coverage,
        company_total=gaps.company_total,
        company_asked=len(gaps.asked),
        company_relevance=gaps.company_relevance,
        automated_total=gaps.automated_total,
        automated_live=len(gaps.automated_live),
        automation_live=gaps.automation_live,
        manual=len(gaps.manual),
        could_automate=len(gaps.could_automate),
        unmet=[card.id for card in gaps.unmet],
    )


@get("/lifecycle/gaps", opt=role(Role.viewer), responses=errors(*AUTH))
async def gap_numbers(db: Db) -> GapReportOut:
    """The gap numbers per phase and process (a percentage is null with nothing to measure)."""
    await ensure_workspace(db)
    report = await load_gaps(db, total_label=_("All phases"))
    return GapReportOut(
        total=_gaps_out(report.total),
        phases=[
            PhaseGapsOut(
                phase_id=phase.phase_id,
                gaps=_gaps_out(phase.gaps),
                processes={pid: _gaps_out(gaps) for pid, gaps in phase.processes},
            )
            for phase in report.phases
        ],
    )


ROUTES = [list_touchpoints, save_touchpoint, gap_numbers]
