"""Test send ("sample"): the editor posts a rendered email and it goes out now, through the outbox.

``POST /messaging/test-send`` with ``to``, ``subject``, ``text`` and optional
``html``/``preheader`` (form or JSON). The message is transactional, has no
contact (no tracking events, no caps) and its subject starts with "[Test]"; in
development the mail catcher keeps it for the Outbox page.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from litestar import Request, post
from litestar.exceptions import ValidationException
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import audited, record
from backend.auth.guards import role
from backend.contacts.normalize import InvalidValue, normalize_email
from backend.deps import Actor, Db, Now
from backend.i18n import _
from backend.models import OutboxMessage, Role
from backend.web.messaging.common import runtime
from runtime.doorbell import Doorbell, ring_after_commit


async def queue_test_email(
    db: AsyncSession,
    doorbell: Doorbell,
    now: datetime,
    *,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    preheader: str | None = None,
) -> int:
    """Queue one test email: transactional, no contact, not tracked, "[Test]" in the subject.

    Also what the editor's "Send a test" uses, so both send exactly the same kind of message.
    """
    payload = {
        "to": to,
        "subject": f"[Test] {subject}"[:250],
        "text": text,
        "html": html,
        "preheader": preheader,
        "track": False,
    }
    message_id = await db.scalar(
        insert(OutboxMessage)
        .values(
            idempotency_key=f"test-send:{secrets.token_hex(12)}",
            channel="email",
            category="transactional",
            payload=payload,
            next_attempt_at=now,
            created_at=now,
        )
        .returning(OutboxMessage.id)
    )
    ring_after_commit(db, doorbell)
    assert message_id is not None  # RETURNING of an insert always has a row
    return int(message_id)


async def _fields(request: Request[Any, Any, Any]) -> dict[str, str]:
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await request.json()
        return {str(k): str(v) for k, v in body.items()} if isinstance(body, dict) else {}
    return {k: str(v) for k, v in (await request.form()).items()}


@post(
    "/messaging/test-send",
    opt=role(Role.marketer) | audited("message.test_sent"),
    request_max_body_size=256_000,
)
async def send_sample(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now
) -> dict[str, Any]:
    """Queue one test email now; answers its outbox id and page."""
    fields = await _fields(request)
    try:
        to = normalize_email(fields.get("to", ""), "to")
    except InvalidValue as exc:
        raise ValidationException(exc.message) from exc
    subject = fields.get("subject", "").strip()
    if not subject or not (fields.get("text") or fields.get("html")):
        raise ValidationException(_("A test email needs a subject and a message."))
    message_id = await queue_test_email(
        db,
        runtime(request).doorbell,
        clock.now(),
        to=to,
        subject=subject,
        text=fields.get("text", ""),
        html=fields.get("html") or None,
        preheader=fields.get("preheader") or None,
    )
    record(db, actor, "message.test_sent", ("outbox_messages", message_id), {"to": to})
    return {"message_id": message_id, "url": f"/outbox/{message_id}"}


ROUTES = [send_sample]
