"""Open pixel and click redirect: public, signed, and turned into events that wake journeys.

``/t/o/<token>.gif`` records ``email.opened`` (once per message) and answers a
1x1 GIF; ``/t/c/<token>`` records ``email.clicked`` (once per message and link)
and redirects to the signed destination. Event properties carry the outbox
message id and the node that sent it, so ``wait.event`` on "email.opened with
node_id X" wakes.

Each request is one transaction: the event and the journeys it wakes are
written together (a click builds its verified link before the commit), so a
request that fails leaves nothing and its retry, deduplicated per message (and link),
records the event once: unique opens and clicks, which is what engagement
conditions ("opened the email of node X") ask.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from typing import Any

from litestar import Request, Response, get
from litestar.params import FromPath
from litestar.response import Redirect
from sqlalchemy import select

from backend.auth.guards import public
from backend.deps import Db
from backend.models import Journey, OutboxMessage
from backend.personalization.identify import verifying_link
from backend.web.messaging.common import claims, record_event

log = logging.getLogger(__name__)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}


async def _record(
    request: Request[Any, Any, Any], db: Db, message_id: int, kind: str, extra: dict[str, Any]
) -> OutboxMessage | None:
    message = await db.get(OutboxMessage, message_id)
    if message is None or message.contact_id is None:
        return None
    properties = {
        "message_id": message.id,
        "node_id": message.node_id,
        "journey_id": message.journey_id,
        "channel": message.channel,
        **extra,
    }
    if message.journey_id is not None:
        # Engagement conditions ("opened the email of node X in flow Y") match on the flow.
        properties["flow_id"] = await db.scalar(
            select(Journey.flow_id).where(Journey.id == message.journey_id)
        )
    suffix = hashlib.sha256(str(extra.get("url", "")).encode()).hexdigest()[:16]
    await record_event(
        request,
        db,
        kind,
        contact_id=message.contact_id,
        properties=properties,
        dedupe_key=f"{kind}:{message.id}:{suffix}",
        source="email",
    )
    return message


@get("/t/o/{token:str}", opt=public())
async def open_pixel(
    request: Request[Any, Any, Any], db: Db, token: FromPath[str]
) -> Response[bytes]:
    """Record the open (first one counts) and answer the invisible image.

    When the open cannot be stored the answer is a 503 (still the image, which
    stays invisible): a 200 would claim an open that was never recorded, and
    the next time the mail is shown counts it instead.
    """
    data = claims(request, "open", token.removesuffix(".gif"))
    try:
        await _record(request, db, int(data["m"]), "email.opened", {})
        # Commit here, not after the answer is chosen: a failed commit must not answer 200.
        await db.commit()
    except Exception:
        log.exception("recording an email open failed")
        await db.rollback()
        headers = {**_NO_STORE, "Retry-After": "60"}
        return Response(content=PIXEL, media_type="image/gif", headers=headers, status_code=503)
    return Response(content=PIXEL, media_type="image/gif", headers=_NO_STORE)


@get("/t/c/{token:str}", opt=public())
async def click(request: Request[Any, Any, Any], db: Db, token: FromPath[str]) -> Redirect:
    """Record the click and send the person on to the link's signed destination."""
    data = claims(request, "click", token)
    target = str(data.get("u", ""))
    if not target.startswith(("http://", "https://")):
        target = "/"
    message = await _record(request, db, int(data["m"]), "email.clicked", {"url": target})
    if message is not None and message.contact_id is not None:
        # On a site with the snippet the click also proves who the browser is.
        target = await verifying_link(
            db,
            request.app.state.settings.resolved_secret_key(),
            target,
            message.contact_id,
            int(request.app.state.clock.now().timestamp()),
        )
    return Redirect(path=target, status_code=302, headers=_NO_STORE)


ROUTES = [open_pixel, click]
