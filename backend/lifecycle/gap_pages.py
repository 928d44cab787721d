"""The gap analysis page, and a board's export, import and printable page."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from litestar.response import Template
from sqlalchemy import select

from backend.audit import audited, record
from backend.auth.guards import role
from backend.deps import Actor, Db, Now
from backend.i18n import _
from backend.lifecycle.board import Filters, load_board
from backend.lifecycle.common import labels, plan_error
from backend.lifecycle.gaps import load_gaps
from backend.lifecycle.plan import PlanError, ensure_workspace, get_process
from backend.lifecycle.touchpoints import create_card
from backend.lifecycle.transfer import export_csv, parse_csv
from backend.models import Role, Touchpoint, TouchpointCategory
from backend.web.render import redirect, render

IMPORT_LIMIT = 2 * 1024 * 1024


@get("/lifecycle/gaps", opt=role(Role.viewer))
async def gaps_page(request: Request[Any, Any, Any], db: Db) -> Template:
    await ensure_workspace(db)
    report = await load_gaps(db, total_label=_("All phases"))
    return render(
        request, "lifecycle/gaps.html", {"nav": "lifecycle", "report": report, **labels()}
    )


@get("/lifecycle/processes/{process_id:int}/print", opt=role(Role.viewer))
async def print_page(
    request: Request[Any, Any, Any], db: Db, clock: Now, process_id: FromPath[int]
) -> Template:
    try:
        board = await load_board(db, process_ids=[process_id], filters=Filters(), now=clock.now())
    except PlanError as exc:
        raise plan_error(exc) from exc
    return render(request, "lifecycle/print.html", {"board": board, **labels()})


async def _cards(db: Db, process_id: int) -> list[Touchpoint]:
    return list(
        await db.scalars(
            select(Touchpoint)
            .where(Touchpoint.process_id == process_id)
            .order_by(Touchpoint.position, Touchpoint.id)
        )
    )


@get("/lifecycle/processes/{process_id:int}/export.csv", opt=role(Role.viewer))
async def export_board(db: Db, process_id: FromPath[int]) -> Response[str]:
    try:
        process = await get_process(db, process_id)
    except PlanError as exc:
        raise plan_error(exc) from exc
    text = export_csv(await _cards(db, process.id))
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="board-{process.id}.csv"'},
    )


@post(
    "/lifecycle/processes/{process_id:int}/import",
    opt=role(Role.marketer) | audited("touchpoint.imported"),
    request_max_body_size=IMPORT_LIMIT,
)
async def import_board(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    clock: Now,
    process_id: FromPath[int],
) -> Response[Any]:
    """Add the file's cards to the end of the timeline; nothing is added if a row is wrong."""
    upload = (await request.form()).get("file")
    if not isinstance(upload, UploadFile):
        raise HTTPException(status_code=422, detail=_("Choose a CSV file to import."))
    try:
        text = (await upload.read()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(status_code=422, detail=_("Save the file as UTF-8 CSV.")) from exc
    parsed = parse_csv(text)
    if parsed.errors:
        raise HTTPException(status_code=422, detail=" ".join(parsed.errors[:10]))
    try:
        process = await get_process(db, process_id)
        existing = {
            card.title: card.id
            for card in await _cards(db, process.id)
            if card.category == TouchpointCategory.customer.value
        }
        made = []
        for values in parsed.rows:
            card = await create_card(db, process.id, values, now=clock.now())
            made.append(card)
            if card.category == TouchpointCategory.customer.value:
                existing[card.title] = card.id
    except PlanError as exc:
        raise plan_error(exc) from exc
    for card, answers in zip(made, parsed.answers, strict=True):
        if answers and card.category != TouchpointCategory.customer.value:
            card.answers_id = existing.get(answers)
    record(db, actor, "touchpoint.imported", process, {"cards": len(made)})
    return redirect(request, f"/lifecycle/processes/{process.id}")


ROUTES = [gaps_page, print_page, export_board, import_board]
