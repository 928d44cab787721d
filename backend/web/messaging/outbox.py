"""Outbox pages: every message with its status and reason, the rendered email, admin retry."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, FromQuery
from litestar.response import Template
from sqlalchemy import func, select

from backend.audit import audited, record
from backend.auth.guards import role
from backend.deps import Actor, Db, Paging
from backend.i18n import N_, _
from backend.models import Contact, Delivery, OutboxMessage, OutboxStatus, Role
from backend.web.messaging.common import runtime
from backend.web.render import redirect, render
from runtime.admin import AdminError

STATUSES = {
    OutboxStatus.pending.value: N_("Waiting"),
    OutboxStatus.sending.value: N_("Sending"),
    OutboxStatus.sent.value: N_("Sent"),
    OutboxStatus.deferred.value: N_("Deferred"),
    OutboxStatus.suppressed.value: N_("Not sent"),
    OutboxStatus.dead.value: N_("Failed"),
}
CHANNELS = ("email", "sms", "webhook", "task")


@get("/outbox", opt=role(Role.marketer))
async def outbox_page(
    request: Request[Any, Any, Any],
    db: Db,
    paging: Paging,
    status: FromQuery[str] = "",
    channel: FromQuery[str] = "",
) -> Template:
    status = status if status in STATUSES else ""
    channel = channel if channel in CHANNELS else ""
    stmt = select(OutboxMessage, Contact.email, Contact.phone).outerjoin(
        Contact, Contact.id == OutboxMessage.contact_id
    )
    if status:
        stmt = stmt.where(OutboxMessage.status == status)
    if channel:
        stmt = stmt.where(OutboxMessage.channel == channel)
    total = await db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = (
        await db.execute(
            stmt.order_by(OutboxMessage.id.desc()).limit(paging.size).offset(paging.offset)
        )
    ).all()
    return render(
        request,
        "messaging/outbox.html",
        {
            "nav": "outbox",
            "rows": rows,
            "total": total,
            "status": status,
            "channel": channel,
            "statuses": STATUSES,
            "channels": CHANNELS,
            "paging": paging,
            "pages": paging.count(total),
        },
        block="results",
    )


@get("/outbox/{message_id:int}", opt=role(Role.marketer))
async def outbox_message_page(
    request: Request[Any, Any, Any], db: Db, message_id: FromPath[int]
) -> Template:
    message = await db.get(OutboxMessage, message_id)
    if message is None:
        raise NotFoundException(_("There is no message with this number."))
    contact = await db.get(Contact, message.contact_id) if message.contact_id else None
    return render(
        request,
        "messaging/outbox_message.html",
        {
            "nav": "outbox",
            "message": message,
            "contact": contact,
            "delivery": await db.get(Delivery, message.id),
            "statuses": STATUSES,
        },
    )


@post("/outbox/{message_id:int}/retry", opt=role(Role.admin) | audited("outbox.retried"))
async def retry_outbox_message(
    request: Request[Any, Any, Any], db: Db, actor: Actor, message_id: FromPath[int]
) -> Response[Any]:
    """Send a failed (dead-lettered) message again with a fresh attempt budget."""
    try:
        await runtime(request).retry_message(message_id)
    except AdminError as exc:
        raise ValidationException(_("Only a failed message can be sent again.")) from exc
    record(db, actor, "outbox.retried", ("outbox_messages", message_id))
    return redirect(request, f"/outbox/{message_id}")


ROUTES = [outbox_page, outbox_message_page, retry_outbox_message]
