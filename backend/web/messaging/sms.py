"""SMS provider callbacks (delivery reports, inbound replies) and the editor's length counter.

- ``POST /hooks/sms/status/<token>``: the per-message signed URL handed to the
  provider; a final status becomes ``sms.delivered`` or ``sms.failed``;
- ``POST /hooks/sms/inbound/<token>``: configure this URL (token from
  ``LinkSigner.sms_inbound_token``) as the number's inbound webhook; a STOP
  reply withdraws SMS consent and suppresses the number; every reply becomes
  ``sms.received``;
- ``GET /messaging/sms-length?text=``: encoding, characters and SMS parts.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from sqlalchemy import select

from backend.audit import unaudited
from backend.auth.guards import public, role
from backend.contacts.identify import record_consent_change
from backend.deps import Db, Now
from backend.i18n import _
from backend.models import Contact, OutboxMessage, Role, SuppressionReason
from backend.web.messaging.common import claims, record_event
from runtime.delivery.sms import PROVIDERS, GenericProvider, SmsReport
from runtime.messaging.phone import BadNumber, segments, to_e164
from runtime.messaging.suppression import suppress, unsubscribe

STOP_WORDS = {"STOP", "STOPP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "CANCEL", "AVSLUTA"}


async def _report(request: Request[Any, Any, Any]) -> SmsReport:
    settings = request.app.state.settings
    provider = PROVIDERS.get(settings.sms_provider or "", GenericProvider)
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await request.json()
        form = {str(k): str(v) for k, v in (body or {}).items()} if isinstance(body, dict) else {}
    else:
        form = {k: str(v) for k, v in (await request.form()).items()}
    report: SmsReport = provider.parse_callback(form)
    return report


def _reply(request: Request[Any, Any, Any]) -> Response[str]:
    # Twilio wants TwiML back; an empty <Response/> sends no reply SMS.
    if request.app.state.settings.sms_provider == "twilio":
        return Response(content="<Response/>", media_type="text/xml")
    return Response(content="", media_type="text/plain")


@post(
    "/hooks/sms/status/{token:str}",
    opt=public(csrf_exempt=True)
    | unaudited("the SMS provider's delivery report, recorded on the message"),
    request_max_body_size=16384,
)
async def sms_status(
    request: Request[Any, Any, Any], db: Db, token: FromPath[str]
) -> Response[str]:
    data = claims(request, "sms-status", token)
    message = await db.get(OutboxMessage, int(data["m"]))
    if message is None:
        raise NotFoundException(_("This link is not valid."))
    report = await _report(request)
    if report.status in ("delivered", "failed") and message.contact_id is not None:
        # In the request's transaction: a failure stores nothing, and the
        # provider's retry is deduplicated per message and status.
        await record_event(
            request,
            db,
            f"sms.{report.status}",
            contact_id=message.contact_id,
            properties={
                "message_id": message.id,
                "node_id": message.node_id,
                "journey_id": message.journey_id,
                "provider_message_id": report.provider_message_id,
            },
            dedupe_key=f"sms.{report.status}:{message.id}",
            source="sms",
        )
    return _reply(request)


@post(
    "/hooks/sms/inbound/{token:str}",
    opt=public(csrf_exempt=True)
    | unaudited("the SMS provider's callback: a customer's reply, recorded as an event"),
    request_max_body_size=16384,
)
async def sms_inbound(
    request: Request[Any, Any, Any], db: Db, clock: Now, token: FromPath[str]
) -> Response[str]:
    claims(request, "sms-inbound", token)
    report = await _report(request)
    settings = request.app.state.settings
    try:
        number = to_e164(report.sender or "", settings.sms_default_region)
    except BadNumber:
        return _reply(request)
    now = clock.now()
    contacts = (await db.scalars(select(Contact).where(Contact.phone == number))).all()
    words = (report.text or "").strip().split()
    stop = bool(words) and words[0].upper().strip(".!") in STOP_WORDS
    if stop:
        await suppress(
            db,
            channel="sms",
            address=number,
            reason=SuppressionReason.stop,
            now=now,
            source="STOP reply",
        )
        for contact in contacts:
            change = await unsubscribe(
                db, contact, "sms", source="STOP reply", now=now, reason=SuppressionReason.stop
            )
            record_consent_change(db, contact, change)
    # The STOP and its events commit together: a failure leaves the number unsuppressed
    # and the provider's retry (same message id) acts once.
    for contact in contacts:
        await record_event(
            request,
            db,
            "sms.received",
            contact_id=contact.id,
            properties={"text": (report.text or "")[:1600], "stop": stop},
            dedupe_key=f"sms.received:{report.provider_message_id}:{contact.id}"
            if report.provider_message_id
            else None,
            source="sms",
        )
    return _reply(request)


@get("/messaging/sms-length", opt=role(Role.marketer))
async def sms_length(text: FromQuery[str] = "") -> dict[str, Any]:
    """For the editor: how many characters and SMS parts the text needs."""
    if len(text) > 5000:
        return {"error": _("The text is too long to count (more than 5000 characters).")}
    length = segments(text)
    return {
        "encoding": length.encoding,
        "characters": length.units,
        "segments": length.segments,
        "per_segment": length.per_segment,
    }


ROUTES = [sms_status, sms_inbound, sms_length]
