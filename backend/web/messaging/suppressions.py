"""The suppression list page, and the email bounce/complaint callback that feeds it.

``POST /hooks/email/bounce/<token>`` takes JSON or a form with ``email`` (or
``recipient``) and ``type``: ``hard`` suppresses the address for every message,
``complaint`` unsubscribes the contact from marketing email, ``soft`` is only
recorded. Each becomes an ``email.bounced`` event for the contact.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath
from litestar.response import Template
from sqlalchemy import delete, func, select

from backend.audit import audited, record, unaudited
from backend.auth.guards import public, role
from backend.contacts.identify import record_consent_change
from backend.deps import Actor, Db, Now, Paging
from backend.i18n import _
from backend.models import Contact, Role, Suppression, SuppressionReason
from backend.web.messaging.common import claims, runtime, signer
from backend.web.render import redirect, render
from runtime.messaging.suppression import address_for, suppress, unsubscribe

BOUNCE_TYPES = ("hard", "soft", "complaint")


@get("/outbox/suppressions", opt=role(Role.marketer))
async def suppressions_page(request: Request[Any, Any, Any], db: Db, paging: Paging) -> Template:
    total = await db.scalar(select(func.count()).select_from(Suppression)) or 0
    rows = (
        await db.scalars(
            select(Suppression)
            .order_by(Suppression.id.desc())
            .limit(paging.size)
            .offset(paging.offset)
        )
    ).all()
    links = signer(request)
    return render(
        request,
        "messaging/suppressions.html",
        {
            "nav": "outbox",
            "rows": rows,
            "total": total,
            "paging": paging,
            "pages": paging.count(total),
            "sms_inbound_url": links.sms_inbound_url(),
            "email_bounce_url": links.email_bounce_url(),
        },
    )


@post(
    "/outbox/suppressions/{suppression_id:int}/remove",
    opt=role(Role.admin) | audited("suppression.removed"),
)
async def remove_suppression(
    request: Request[Any, Any, Any], db: Db, actor: Actor, suppression_id: FromPath[int]
) -> Response[Any]:
    """Lift an entry (a bounce that was the provider's mistake); consent is not changed."""
    entry = await db.get(Suppression, suppression_id)
    if entry is None:
        raise NotFoundException(_("This address is not on the list."))
    details = {"channel": entry.channel, "address": entry.address, "reason": entry.reason}
    await db.execute(delete(Suppression).where(Suppression.id == suppression_id))
    record(db, actor, "suppression.removed", ("suppressions", suppression_id), details)
    return redirect(request, "/outbox/suppressions")


async def _payload(request: Request[Any, Any, Any]) -> dict[str, str]:
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await request.json()
        return {str(k): str(v) for k, v in body.items()} if isinstance(body, dict) else {}
    return {k: str(v) for k, v in (await request.form()).items()}


@post(
    "/hooks/email/bounce/{token:str}",
    opt=public(csrf_exempt=True)
    | unaudited("the mail provider's bounce report, recorded as a suppression"),
    request_max_body_size=65536,
    status_code=204,
)
async def email_bounce(
    request: Request[Any, Any, Any], db: Db, clock: Now, token: FromPath[str]
) -> None:
    claims(request, "email-bounce", token)
    data = await _payload(request)
    address = address_for("email", data.get("email") or data.get("recipient"))
    kind = data.get("type", "hard").lower()
    if address is None or kind not in BOUNCE_TYPES:
        raise ValidationException(
            _("Send the bounced address as “email” and its type as hard, soft or complaint.")
        )
    now = clock.now()
    contacts = (await db.scalars(select(Contact).where(func.lower(Contact.email) == address))).all()
    source = f"bounce notification ({kind})"
    if kind == "hard":
        await suppress(
            db,
            channel="email",
            address=address,
            reason=SuppressionReason.hard_bounce,
            now=now,
            contact_id=contacts[0].id if contacts else None,
            source=source,
        )
    elif kind == "complaint":
        for contact in contacts:
            change = await unsubscribe(
                db, contact, "email", source=source, now=now, reason=SuppressionReason.complaint
            )
            record_consent_change(db, contact, change)
    await db.commit()
    for contact in contacts:
        await runtime(request).ingest(
            "email.bounced",
            contact_id=contact.id,
            properties={"type": kind, "address": address, "detail": data.get("detail", "")[:500]},
            source="email",
        )


ROUTES = [suppressions_page, remove_suppression, email_bounce]
