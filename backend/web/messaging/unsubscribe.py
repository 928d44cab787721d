"""Unsubscribe and preferences: public pages reached through signed links in messages.

``POST /u/<token>`` is the RFC 8058 one-click endpoint (mail clients post
``List-Unsubscribe=One-Click`` without cookies) and also what the page's button
posts; ``GET /u/<token>`` only shows the button, because mail scanners follow
links. ``/preferences/<token>`` lets the contact choose email and SMS. The
signed token is the capability, so these are CSRF-exempt and read no session.

Each post is one transaction: the suppression, the consent history row and the
``<channel>.unsubscribed`` event commit together or not at all. A retry finds
the consent already withdrawn (no second history row), the suppression already
there, and the event's dedupe key taken.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template

from backend.audit import unaudited
from backend.auth.guards import public
from backend.contacts.identify import record_consent_change
from backend.deps import Db, Now
from backend.i18n import _
from backend.models import Channel, Contact
from backend.web.messaging.common import claims, record_event, signer
from runtime.messaging.suppression import consent_withdrawn, resubscribe, unsubscribe

CHANNELS = (Channel.email.value, Channel.sms.value)


async def _contact(db: Db, contact_id: Any) -> Contact:
    contact = await db.get(Contact, int(contact_id)) if contact_id is not None else None
    if contact is None or contact.erased_at is not None:
        raise NotFoundException(_("We could not find your subscription."))
    return contact


def _page(request: Request[Any, Any, Any], **context: Any) -> Template:
    defaults = dict.fromkeys(
        ("message", "unsubscribe_token", "preferences_token", "preferences_url")
    )
    return Template(template_name="messaging/public.html", context={**defaults, **context})


@get("/u/{token:str}", opt=public())
async def unsubscribe_page(
    request: Request[Any, Any, Any], db: Db, token: FromPath[str]
) -> Template:
    data = claims(request, "unsubscribe", token)
    contact = await _contact(db, data.get("c"))
    return _page(
        request,
        title=_("Unsubscribe"),
        message=_("Press the button to stop receiving marketing messages at %(address)s.")
        % {"address": contact.email or contact.phone or ""},
        unsubscribe_token=token,
        preferences_url=signer(request).preferences_url(contact.id),
    )


@post(
    "/u/{token:str}",
    opt=public(csrf_exempt=True)
    | unaudited("a customer's own unsubscribe (signed link); the suppression records it"),
    request_max_body_size=4096,
    status_code=200,
)
async def unsubscribe_now(
    request: Request[Any, Any, Any], db: Db, clock: Now, token: FromPath[str]
) -> Template:
    """One click, no questions: withdraw consent, suppress the address, record an event."""
    data = claims(request, "unsubscribe", token)
    contact = await _contact(db, data.get("c"))
    channel = str(data.get("ch") or "email")
    if channel not in CHANNELS:
        raise NotFoundException(_("This link is not valid."))
    now = clock.now()
    source = f"unsubscribe link (message {data.get('m')})"
    change = await unsubscribe(db, contact, channel, source=source, now=now)
    record_consent_change(db, contact, change)
    await record_event(
        request,
        db,
        f"{channel}.unsubscribed",
        contact_id=contact.id,
        properties={"message_id": data.get("m"), "channel": channel},
        dedupe_key=f"{channel}.unsubscribed:{data.get('m')}",
        source=channel,
    )
    return _page(
        request,
        title=_("You are unsubscribed"),
        message=_("You will not receive marketing messages from us any more."),
        preferences_url=signer(request).preferences_url(contact.id),
    )


@get("/preferences/{token:str}", opt=public())
async def preferences_page(
    request: Request[Any, Any, Any], db: Db, token: FromPath[str]
) -> Template:
    data = claims(request, "preferences", token)
    contact = await _contact(db, data.get("c"))
    return _page(
        request,
        title=_("Your preferences"),
        preferences_token=token,
        subscribed={ch: not consent_withdrawn(contact.consent, ch) for ch in CHANNELS},
        contact=contact,
    )


@post(
    "/preferences/{token:str}",
    opt=public(csrf_exempt=True)
    | unaudited("a customer's own preferences (signed link); the consent rows record it"),
    request_max_body_size=4096,
    status_code=200,
)
async def save_preferences(
    request: Request[Any, Any, Any], db: Db, clock: Now, token: FromPath[str]
) -> Template:
    data = claims(request, "preferences", token)
    contact = await _contact(db, data.get("c"))
    form = await request.form()
    now = clock.now()
    for channel in CHANNELS:
        wanted = form.get(channel) == "1"
        if wanted == (not consent_withdrawn(contact.consent, channel)):
            continue
        if wanted:
            change = await resubscribe(db, contact, channel, source="preference page", now=now)
            record_consent_change(db, contact, change)
        else:
            change = await unsubscribe(db, contact, channel, source="preference page", now=now)
            record_consent_change(db, contact, change)
    return _page(
        request,
        title=_("Your preferences"),
        message=_("Your choices are saved."),
        preferences_token=token,
        subscribed={ch: not consent_withdrawn(contact.consent, ch) for ch in CHANNELS},
        contact=contact,
    )


ROUTES = [unsubscribe_page, unsubscribe_now, preferences_page, save_preferences]
