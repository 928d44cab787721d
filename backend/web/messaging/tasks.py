"""The Tasks page: call-list tasks from "notify salesperson"; completing one emits an event."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Template
from sqlalchemy import func, or_, select

from backend.audit import audited, record
from backend.auth.guards import RoleRefused, may_act_on, role
from backend.deps import Actor, Db, Now, Paging
from backend.i18n import _
from backend.models import Contact, Role, Task, TaskStatus, User
from backend.web.messaging.common import runtime
from backend.web.render import redirect, render

TASK_COMPLETED = "task.completed"


@get("/tasks", opt=role(Role.viewer))
async def tasks_page(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    paging: Paging,
    show: FromQuery[str] = "mine",
) -> Template:
    # "mine" is the person's own tasks and the unassigned ones anyone may take: a task that
    # reached nobody must not hide behind an empty default list.
    show = show if show in ("mine", "unassigned", "open", "done") else "mine"
    stmt = (
        select(Task, Contact, User.name)
        .outerjoin(Contact, Contact.id == Task.contact_id)
        .outerjoin(User, User.id == Task.owner_id)
    )
    if show == "done":
        stmt = stmt.where(Task.status == TaskStatus.done.value)
    else:
        stmt = stmt.where(Task.status == TaskStatus.open.value)
    me = actor.id if actor.kind == "user" else None
    if show == "mine":
        stmt = stmt.where(or_(Task.owner_id == me, Task.owner_id.is_(None)))
    elif show == "unassigned":
        stmt = stmt.where(Task.owner_id.is_(None))
    total = await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = (
        await db.execute(
            stmt.order_by(Task.due_at.asc().nulls_last(), Task.id)
            .limit(paging.size)
            .offset(paging.offset)
        )
    ).all()
    return render(
        request,
        "messaging/tasks.html",
        {
            "nav": "tasks",
            "rows": rows,
            "total": total,
            "show": show,
            "me": me,
            "paging": paging,
            "pages": paging.count(total),
        },
        block="results",
    )


@post("/tasks/{task_id:int}/take", opt=role(Role.viewer) | audited("task.taken"))
async def take_task(
    request: Request[Any, Any, Any], db: Db, actor: Actor, task_id: FromPath[int]
) -> Response[Any]:
    """Assign an unassigned task to the person who takes it (first one wins)."""
    task = await db.get(Task, task_id)
    if task is None:
        raise NotFoundException(_("There is no task with this number."))
    if task.owner_id is None and actor.kind == "user":
        task.owner_id = actor.id
        record(db, actor, "task.taken", task, {"title": task.title})
        await db.commit()
    return redirect(request, "/tasks")


@post("/tasks/{task_id:int}/done", opt=role(Role.viewer) | audited("task.completed"))
async def complete_task(
    request: Request[Any, Any, Any], db: Db, clock: Now, actor: Actor, task_id: FromPath[int]
) -> Response[Any]:
    """Mark the task done and emit ``task.completed`` for its contact (flows can wait on it).

    Its owner may complete it; anyone else needs marketer (``task.completed`` moves journeys).
    """
    task = await db.get(Task, task_id)
    if task is None:
        raise NotFoundException(_("There is no task with this number."))
    if not may_act_on(actor, task.owner_id):
        raise RoleRefused(
            _("Only the task's owner or a marketer can complete this task; it is not yours.")
        )
    if task.status != TaskStatus.done.value:
        task.status = TaskStatus.done.value
        task.completed_at = clock.now()
        record(db, actor, "task.completed", task, {"title": task.title})
        await db.commit()
        if task.contact_id is not None:
            await runtime(request).ingest(
                TASK_COMPLETED,
                contact_id=task.contact_id,
                properties={
                    "task_id": task.id,
                    "node_id": task.node_id,
                    "journey_id": task.journey_id,
                    "completed_by": actor.label,
                },
                dedupe_key=f"{TASK_COMPLETED}:{task.id}",
                source="tasks",
            )
    return redirect(request, "/tasks")


ROUTES = [tasks_page, take_task, complete_task]
