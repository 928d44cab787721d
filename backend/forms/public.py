"""Public form pages: the hosted page and iframe at ``/f/{slug}``, submissions, double opt-in.

Submissions come from anyone, so they are checked before anything is
written: the origin (our own pages or a site key's allowed origins), a rate
limit per address and form, a body-size cap, then the honeypot, fill-in time
and per-field checks of ``backend.forms.submit``. An accepted submission
identifies the contact, records consent (or emails a signed confirmation
link when the form uses double opt-in) and stores a ``form.submitted`` event
keyed so that a double click is stored, and enrolls flows, once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from litestar import Request, Response, get, post
from litestar.exceptions import HTTPException, NotFoundException, PermissionDeniedException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import unaudited
from backend.auth.guards import public
from backend.auth.keys import normalize_origin
from backend.contacts.identify import AttributeSchema, identify, record_consent
from backend.contacts.normalize import InvalidValue
from backend.contacts.schemas import TrackIn
from backend.contacts.track import EventRuntime, track
from backend.deps import Db, Now
from backend.forms.definition import FormDefinition
from backend.forms.optin import (
    CLAIM_COOKIE,
    MAX_AGE_SECONDS,
    BadToken,
    OptIn,
    claim_cookie,
    claimed_by,
    read_optin,
    sign_optin,
)
from backend.forms.store import definition_of
from backend.forms.submit import CheckedSubmission, check_submission
from backend.i18n import _
from backend.models import Contact, Form, OutboxMessage, SiteKey
from backend.personalization.claims import PENDING_PROFILE
from backend.personalization.identify import (
    VISITOR_ID,
    confirm_claim,
    find_contact,
    stitch_submission,
    verifying_link,
)
from backend.ratelimit import RateLimiter
from backend.web.render import render
from backend.web.urls import public_base_url
from runtime.doorbell import ring_after_commit
from runtime.events import EventIn, ingest_many
from runtime.routing import next_member

log = logging.getLogger("touchflow.forms")
SUBMIT_BODY_LIMIT = 64 * 1024
EVENT_TYPE = "form.submitted"
CONFIRMED_EVENT_TYPE = "form.confirmed"


class TooManyRequests(HTTPException):
    status_code = 429


def _page(
    request: Request[Any, Any, Any],
    title: str,
    *,
    definition: FormDefinition | None = None,
    action_url: str = "",
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    message: str = "",
    started_at: str = "",
    embed: bool = False,
    confirm_token: str = "",
    visitor_id: str = "",
    status: int = 200,
) -> Template:
    return render(
        request,
        "forms/public.html",
        {
            "title": title,
            "definition": definition,
            "action_url": action_url,
            "values": values or {},
            "errors": errors or {},
            "message": message,
            "started_at": started_at,
            "embed": embed,
            "confirm_token": confirm_token,
            "visitor_id": visitor_id if VISITOR_ID.match(visitor_id) else "",
        },
        status_code=status,
    )


async def _live_form(db: AsyncSession, slug: str) -> Form:
    form = await db.scalar(select(Form).where(Form.slug == slug, Form.archived_at.is_(None)))
    if form is None:
        raise NotFoundException(_("This form does not exist or is no longer published."))
    return form


def _action(form: Form, embed: bool) -> str:
    return f"/f/{form.slug}" + ("?embed=1" if embed else "")


# No CSRF token (so no session cookie) on the public pages: visitors get no cookie
# from a form they have not sent, and the form posts carry no session anyway.
@get("/f/{slug:str}", opt=public(csrf_exempt=True))
async def form_page(
    request: Request[Any, Any, Any],
    db: Db,
    clock: Now,
    slug: FromPath[str],
    embed: FromQuery[bool] = False,
    vid: FromQuery[str] = "",
) -> Template:
    """The hosted page, or with ``?embed=1`` the bare form for an iframe.

    The iframe's submission stitches like the HTML embed: the visitor id comes in
    ``?vid=`` (the page put it there) or from the snippet on the page, which
    answers the frame's ``postMessage`` (see the template).
    """
    form = await _live_form(db, slug)
    return _page(
        request,
        form.name,
        definition=definition_of(form),
        action_url=_action(form, embed),
        # Rounded down: rounding to nearest could judge a quick person half a second
        # faster than they were and drop them as a bot.
        started_at=str(int(clock.now().timestamp())),
        embed=embed,
        visitor_id=vid,
    )


async def _allowed_origin(request: Request[Any, Any, Any], db: AsyncSession) -> bool:
    """Browsers send Origin with every cross-site POST: ours, or a site key's, may post."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser (or a very old one): the other checks still apply
    given = normalize_origin(origin)
    if given is None:
        return False
    base = urlsplit(request.app.state.settings.base_url)
    if given == f"{base.scheme}://{base.netloc}" or given == _request_origin(request):
        return True
    keys = await db.scalars(select(SiteKey.allowed_origins).where(SiteKey.revoked_at.is_(None)))
    return any(given in (origins or []) for origins in keys)


def _request_origin(request: Request[Any, Any, Any]) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


async def _rate_limited(request: Request[Any, Any, Any], form: Form) -> float | None:
    limiter: RateLimiter = request.app.state.rate_limiter
    address = request.client.host if request.client else "unknown"
    try:
        limit = request.app.state.settings.form_limit
        return await limiter.hit(f"form:{form.id}:{address}", limit)
    except RedisError as exc:
        # Losing sign-ups while Redis is down is worse than a few unthrottled posts.
        log.warning("rate limit unavailable, letting the submission through: %s", exc)
        return None


def _raw(data: Any) -> dict[str, str]:
    return {key: value for key, value in data.items() if isinstance(value, str)}


def _target_field(definition: FormDefinition, failed: str) -> str:
    """The form field whose answer caused an error about contact field ``failed``."""
    failed = failed.removeprefix("attributes.")
    for spec in definition.fields:
        target = spec.target.removeprefix("attr:")
        if failed in (spec.name, spec.target, target):
            return spec.name
    return "form"


@post(
    "/f/{slug:str}",
    opt=public(csrf_exempt=True)
    | unaudited("a visitor's form post; the event and consent rows record it"),
    request_max_body_size=SUBMIT_BODY_LIMIT,
    status_code=200,
)
async def submit_form(
    request: Request[Any, Any, Any],
    db: Db,
    clock: Now,
    slug: FromPath[str],
    embed: FromQuery[bool] = False,
) -> Response[Any] | Template:
    """Take a submission: thank-you page, redirect, or the form again with its errors."""
    # The body comes off the network before any transaction starts.
    raw = _raw(await request.form())
    form = await _live_form(db, slug)
    if not await _allowed_origin(request, db):
        raise PermissionDeniedException(
            _("This form may only be sent from the sites it is published on.")
        )
    # No transaction stays open across the rate limiter's call to Redis.
    await db.commit()
    wait = await _rate_limited(request, form)
    if wait is not None:
        raise TooManyRequests(
            _("Too many submissions from your address. Please try again in a minute."),
            headers={"Retry-After": str(int(wait) + 1)},
        )
    definition = definition_of(form)
    now = clock.now()
    try:
        started = float(raw.get("form_started_at", ""))
    except ValueError:
        started = None
    checked = check_submission(definition, raw, started_at=started, now_ts=now.timestamp())
    thanks = definition.success_message or _("Thank you!")
    if checked.is_spam:
        # Look like success: telling a bot why it failed helps it try again.
        return _page(request, form.name, message=thanks, embed=embed)
    if checked.accepted:
        assert checked.identify is not None
        try:
            async with db.begin_nested():
                stored = await _store(request, db, form, definition, checked, now)
        except InvalidValue as exc:
            checked.errors[_target_field(definition, exc.field)] = exc.message
        else:
            answer: Response[Any]
            if definition.redirect_url:
                answer = Redirect(path=definition.redirect_url, status_code=303)
            else:
                if stored.pending:
                    thanks = _(
                        "Almost done: we sent you an email. Click the link in it to confirm."
                    )
                answer = _page(request, form.name, message=thanks, embed=embed)
            if stored.pending and stored.visitor_id:
                _remember_claim(request, answer, stored.event_id, stored.visitor_id)
            return answer
    return _page(
        request,
        form.name,
        definition=definition,
        action_url=_action(form, embed),
        values=raw,
        errors=checked.errors,
        started_at=raw.get("form_started_at", ""),
        embed=embed,
        visitor_id=raw.get("visitor_id", ""),
        status=422,
    )


@dataclass(frozen=True)
class _Stored:
    """What an accepted submission wrote: its event, and whether it waits for a proof."""

    event_id: int
    visitor_id: str | None  # the snippet's visitor that sent it, when the form carried one
    pending: bool  # consent waits for the confirmation email
    claimed: bool  # the address belongs to a contact this browser is not verified as


async def _store(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    form: Form,
    definition: FormDefinition,
    checked: CheckedSubmission,
    now: datetime,
) -> _Stored:
    """Write an accepted submission: a new contact, a verified one's update, or a claim.

    A claim (a known address, typed in a browser not verified as its owner) changes
    nothing of the contact: its event is stored ``claimed`` with the fields held back
    (``backend.personalization.claims``) until a proof.
    """
    runtime: EventRuntime = request.app.state.runtime
    source = f"form:{form.slug}"
    data = checked.identify
    assert data is not None
    schema = await AttributeSchema.load(db)
    found = await find_contact(db, email=data.email, external_id=data.external_id)
    if found is None:
        visitor_id, verified = None, False
    else:
        visitor_id, verified = await stitch_submission(request, db, found[0], now)
    claimed = found is not None and not verified
    # A claim's answers are still checked, so a browser cannot tell a claim from a sign-up.
    identified = await identify(db, data, source=source, schema=schema, update=not claimed)
    if identified is None:
        assert found is not None
        contact = await db.get(Contact, found[0])
        assert contact is not None
    else:
        contact = identified.contact
    if found is None:
        visitor_id, verified = await stitch_submission(request, db, contact.id, now)
    if not claimed and contact.owner_id is None:
        # The form's round-robin (else its owner) takes the contacts it brings, so their
        # follow-up tasks reach someone.
        contact.owner_id = await next_member(db, form_id=form.id) or form.owner_id
    channel = definition.consent_channel
    pending = bool(channel and checked.consent and definition.double_opt_in)
    properties: dict[str, Any] = {
        "form": form.slug,
        "form_id": form.id,
        "fields": checked.values,
        "consent": checked.consent,
        "confirmation_pending": pending,
    }
    if claimed:
        properties[PENDING_PROFILE] = data.model_dump(
            mode="json", exclude_none=True, exclude_defaults=True
        )
    # A claim keeps its visitor, so a proof for that browser can verify it.
    event = EventIn(
        type=EVENT_TYPE,
        contact_id=contact.id,
        visitor_id=visitor_id if claimed else None,
        properties=properties,
        dedupe_key=checked.dedupe_key(form.id, now),
        source=source,
        claimed=claimed,
    )
    (result,) = await ingest_many(db, runtime.versions, [event], now=now, doorbell=runtime.doorbell)
    if channel and checked.consent and not definition.double_opt_in:
        record_consent(db, contact, channel, True, source, now)
    if pending and not result.duplicate:
        _queue_confirmation(request, db, form, contact, result.event_id, now)
        ring_after_commit(db, runtime.doorbell)
    return _Stored(result.event_id, visitor_id, pending=pending, claimed=claimed)


def _queue_confirmation(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    form: Form,
    contact: Contact,
    event_id: int,
    now: datetime,
) -> None:
    settings = request.app.state.settings
    issued = int(now.timestamp())
    optin = OptIn(form.id, contact.id, issued, event_id)
    token = sign_optin(settings.resolved_secret_key(), optin)
    link = f"{public_base_url(request)}/f/confirm?token={token}"
    text = _(
        "Please confirm that you want to hear from us by opening this link:\n\n%(link)s\n\n"
        "If you did not sign up, ignore this email and nothing will happen."
    ) % {"link": link}
    db.add(
        OutboxMessage(
            idempotency_key=f"optin:{form.id}:{contact.id}:{issued}",
            channel="email",
            category="transactional",
            contact_id=contact.id,
            payload={
                "to": contact.email,
                "subject": _("Please confirm your subscription"),
                "text": text,
            },
            next_attempt_at=now,
        )
    )


def _remember_claim(
    request: Request[Any, Any, Any], response: Response[Any], event_id: int, visitor_id: str
) -> None:
    """The cookie that lets a confirmation in this same browser verify it too."""
    secret = request.app.state.settings.resolved_secret_key()
    response.set_cookie(
        CLAIM_COOKIE,
        claim_cookie(secret, event_id, visitor_id),
        path="/f/confirm",
        max_age=MAX_AGE_SECONDS,
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="lax",
    )


def _read_token(request: Request[Any, Any, Any], token: str, now: datetime) -> OptIn:
    secret = request.app.state.settings.resolved_secret_key()
    try:
        return read_optin(secret, token, now.timestamp())
    except BadToken as exc:
        raise NotFoundException(
            _("This confirmation link is not valid or has expired. Please sign up again.")
        ) from exc


@get("/f/confirm", opt=public(csrf_exempt=True))
async def confirm_page(
    request: Request[Any, Any, Any], clock: Now, token: FromQuery[str]
) -> Template:
    """A button, not an automatic confirmation: mail scanners open links, people press buttons."""
    _read_token(request, token, clock.now())
    return _page(
        request,
        _("Confirm your subscription"),
        message=_("Press the button to confirm."),
        confirm_token=token,
    )


@post(
    "/f/confirm",
    opt=public(csrf_exempt=True)
    | unaudited("a visitor confirms their own opt-in; the consent row records it"),
    request_max_body_size=4096,
    status_code=200,
)
async def confirm(request: Request[Any, Any, Any], db: Db, clock: Now) -> Template | Redirect:
    """Record the consent the link stands for (again is harmless)."""
    now = clock.now()
    token = _raw(await request.form()).get("token", "")
    optin = _read_token(request, token, now)
    form = await db.get(Form, optin.form_id)
    contact = await db.get(Contact, optin.contact_id)
    if form is None or contact is None or contact.erased_at is not None:
        raise NotFoundException(_("This confirmation link is no longer valid."))
    source = f"form:{form.slug}:double-opt-in"
    record_consent(db, contact, form.consent_channel or "email", True, source, now)
    runtime: EventRuntime = request.app.state.runtime
    await track(
        db,
        runtime,
        TrackIn(
            type=CONFIRMED_EVENT_TYPE,
            contact_id=contact.id,
            properties={"form": form.slug, "form_id": form.id},
            idempotency_key=f"optin:{form.id}:{contact.id}:{optin.issued_at}",
        ),
        source=source,
        now=now,
    )
    if optin.event_id:
        secret = request.app.state.settings.resolved_secret_key()
        bound = claimed_by(secret, request.cookies.get(CLAIM_COOKIE))
        browser = bound[1] if bound is not None and bound[0] == optin.event_id else None
        await confirm_claim(db, contact.id, optin.event_id, now, browser=browser)
    redirect_url = definition_of(form).redirect_url
    if redirect_url:
        # The click came from the person's inbox: on the site it also verifies this browser.
        secret = request.app.state.settings.resolved_secret_key()
        target = await verifying_link(db, secret, redirect_url, contact.id, int(now.timestamp()))
        return Redirect(path=target, status_code=303)
    return _page(request, _("Thank you"), message=_("Your subscription is confirmed."))


ROUTES = [confirm_page, confirm, form_page, submit_form]
