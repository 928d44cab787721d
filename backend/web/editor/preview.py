"""Message tools in the side panel: an email preview as a contact gets it, a test send, SMS length.

Which steps get which tool is the channel's say (``editor.channels``): any node
type sending on a channel whose ``preview`` is "email" gets the preview and the
test send, "text" the length counter.

The email preview runs the step's own node (through the SDK test kit, as test
mode does) on its saved config, so what the panel shows is exactly the
message payload the runtime would put in the outbox: same merge fields, same
fallbacks, same skip rules. Nothing here renders a template itself.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from jinja2_fragments.litestar import HTMXBlockTemplate
from litestar import Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Template
from pydantic import ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import audited, record
from backend.auth.guards import role
from backend.auth.principal import Principal
from backend.contacts.normalize import InvalidValue, normalize_email
from backend.deps import Actor, Db, Now
from backend.i18n import _, ngettext
from backend.models import Contact, Flow, Role
from backend.web.editor.channels import channels_of, sending
from backend.web.editor.context import load_flow, registry_of
from backend.web.editor.edits import BASE
from backend.web.messaging.sample import queue_test_email
from backend.web.posted import read_posted
from nodes.sdk import Profile, Services
from nodes.sdk.payloads import EmailPayload
from nodes.sdk.testing import contact as sample_profile
from nodes.sdk.testing import run_node
from runtime.messaging.phone import segments
from runtime.profiles import load_profiles

PREVIEW = "editor/preview.html"
# The counter refuses absurd input rather than counting megabytes on every keystroke.
MAX_SMS_COUNT = 5000
SEARCH_LIMIT = 10


def _block(name: str, context: dict[str, Any]) -> Template:
    return HTMXBlockTemplate(template_name=PREVIEW, block_name=name, context=context)


def _sample() -> Profile:
    """The customer a preview shows when no contact is picked: name and email only."""
    return sample_profile(0, email="alex.sample@example.com", first_name="Alex", last_name="Sample")


async def _profile(db: AsyncSession, email: str) -> tuple[Profile | None, str]:
    """The picked contact's profile (by email), the sample one when none, or an error."""
    email = email.strip().lower()
    if not email:
        return _sample(), ""
    contact_id = await db.scalar(select(Contact.id).where(Contact.email == email))
    if contact_id is None:
        return None, _("There is no contact with this email.")
    return (await load_profiles(db, [contact_id], [])).get(("contact", str(contact_id))), ""


async def render_email(
    request: Request[Any, Any, Any], flow: Flow, node_id: str, profile: Profile, now: datetime
) -> tuple[dict[str, Any] | None, str]:
    """The email payload the step would send ``profile``, or why there is none.

    Runs the node itself on the draft's saved config; a config that does not
    validate, or a customer the node would skip, is reported in words.
    """
    raw = next((n for n in flow.draft_graph.get("nodes", []) if n.get("id") == node_id), None)
    registry = registry_of(request)
    type_id = str(raw.get("type")) if raw else ""
    node_type = registry.get(type_id)
    sends = sending(registry, channels_of(request), type_id)
    if raw is None or node_type is None or sends is None or sends.preview != "email":
        return None, _("This step does not send an email.")
    services: Services = request.app.state.runtime.services
    try:
        outcome = await run_node(
            node_type,
            raw.get("config") or {},
            profile=profile,
            node_id=node_id,
            flow_id=flow.id,
            now=now,
            services=services,
        )
    except ValidationError:
        return None, _("Save a subject and a message for this step to see its preview.")
    email = next((m for m in outcome.messages if m.channel == sends.channel), None)
    if email is None:
        reason = (outcome.data.get(node_id) or {}).get("skipped", "")
        return None, _("This contact would not get this email (%(reason)s).") % {"reason": reason}
    try:
        # Read as the deliverer reads it: a plugin channel's payload gets the same defaults.
        return EmailPayload.read(email.payload).model_dump(by_alias=True, mode="json"), ""
    except ValidationError as exc:
        return None, _("This step's message cannot be shown: %(reason)s") % {"reason": exc}


async def _render_for(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    clock: Now,
    flow: Flow,
    node_id: str,
    contact: str,
) -> tuple[dict[str, Any] | None, str]:
    profile, error = await _profile(db, contact)
    if profile is None:
        return None, error
    return await render_email(request, flow, node_id, profile, clock.now())


def _preview_answer(
    actor: Principal,
    flow: Flow,
    node_id: str,
    contact: str,
    rendered: tuple[dict[str, Any] | None, str],
    **extra: Any,
) -> Template:
    context = {
        "base": f"/flows/{flow.id}/edit",
        "node_id": node_id,
        "contact": contact.strip(),
        "email": rendered[0],
        "error": rendered[1],
        "can_send": actor.allows(Role.marketer),
        "sent": None,
        "send_error": "",
        "to": "",
        **extra,
    }
    return _block("preview", context)


@get(BASE + "/nodes/{node_id:str}/preview", opt=role(Role.viewer))
async def email_preview(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    clock: Now,
    flow_id: FromPath[int],
    node_id: FromPath[str],
    contact: FromQuery[str] = "",
) -> Template:
    """The email step's saved message as ``contact`` (an email; empty: a sample contact) gets it."""
    flow = await load_flow(db, flow_id)
    rendered = await _render_for(request, db, clock, flow, node_id, contact)
    return _preview_answer(actor, flow, node_id, contact, rendered)


@get(BASE + "/preview/contacts", opt=role(Role.viewer))
async def contact_choices(db: Db, flow_id: FromPath[int], contact: FromQuery[str] = "") -> Template:
    """Options for the preview's contact picker: contacts whose email or name matches."""
    text = contact.strip().lower()
    rows: list[tuple[str, str]] = []
    if len(text) >= 2:
        like = f"%{text}%"
        result = await db.execute(
            select(Contact.email, Contact.first_name, Contact.last_name)
            .where(Contact.email.is_not(None))
            .where(
                or_(
                    func.lower(Contact.email).like(like),
                    func.lower(Contact.first_name + " " + Contact.last_name).like(like),
                )
            )
            .order_by(Contact.email)
            .limit(SEARCH_LIMIT)
        )
        rows = [(str(email), f"{first} {last}".strip()) for email, first, last in result]
    return _block("choices", {"choices": rows})


@post(
    BASE + "/nodes/{node_id:str}/test-send", opt=role(Role.marketer) | audited("message.test_sent")
)
async def test_send(
    request: Request[Any, Any, Any],
    db: Db,
    actor: Actor,
    clock: Now,
    flow_id: FromPath[int],
    node_id: FromPath[str],
) -> Template:
    """Send the preview (as the picked contact would get it) to the address typed in ``to``."""
    form = (await read_posted(request)).values
    flow = await load_flow(db, flow_id)
    contact, to = form.get("contact", ""), form.get("to", "")
    rendered = await _render_for(request, db, clock, flow, node_id, contact)
    email = rendered[0]
    if email is None:
        return _preview_answer(actor, flow, node_id, contact, rendered, to=to)
    try:
        address = normalize_email(to, "to")
    except InvalidValue as exc:
        error = exc.message
        return _preview_answer(actor, flow, node_id, contact, rendered, to=to, send_error=error)
    message_id = await queue_test_email(
        db,
        request.app.state.runtime.doorbell,
        clock.now(),
        to=address,
        subject=email["subject"],
        text=email.get("text", ""),
        html=email.get("html") or None,
        preheader=email.get("preheader") or None,
    )
    details = {"to": address, "node": node_id}
    record(db, actor, "message.test_sent", ("outbox_messages", message_id), details)
    return _preview_answer(
        actor, flow, node_id, contact, rendered, to=to, sent=(address, message_id)
    )


_MERGE_FIELD = re.compile(r"\{\{\s*([\w.]+)(?:\s*\|[^}]*)?\s*\}\}")
_CONTACT_COLUMNS = {
    "first_name": Contact.first_name,
    "last_name": Contact.last_name,
    "email": Contact.email,
    "phone": Contact.phone,
}
# For fields the contacts cannot tell (attributes, the trigger's data): a word and a long one.
_UNKNOWN_LENGTHS = (8, 30)


async def _field_lengths(db: AsyncSession, names: set[str]) -> dict[str, tuple[int, int]]:
    """``name -> (typical, longest)`` length of each merge field among the contacts."""
    lengths: dict[str, tuple[int, int]] = {}
    for name in names:
        column = _CONTACT_COLUMNS.get(name)
        if column is None:
            lengths[name] = _UNKNOWN_LENGTHS
            continue
        size = func.length(column)
        typical, longest = (
            await db.execute(select(func.avg(size), func.max(size)).where(column.is_not(None)))
        ).one()
        lengths[name] = (round(typical or 0), int(longest or 0)) if longest else _UNKNOWN_LENGTHS
    return lengths


def _count(text: str) -> str:
    length = segments(text)
    return " · ".join(
        [
            ngettext("%(num)d character", "%(num)d characters", length.units)
            % {"num": length.units},
            ngettext("%(num)d SMS", "%(num)d SMS", length.segments) % {"num": length.segments},
            length.encoding,
        ]
    )


@get(BASE + "/sms-length", opt=role(Role.viewer))
async def sms_length(request: Request[Any, Any, Any], db: Db, flow_id: FromPath[int]) -> Template:
    """The SMS text field's counter: characters, parts and encoding, as a line of HTML.

    The text arrives as the field itself, ``cfg.text`` (htmx includes it). Merge fields
    count as what they become: the contacts' typical and longest values.
    """
    text = request.query_params.get("cfg.text", "")
    context: dict[str, Any] = {"summary": ""}
    if len(text) > MAX_SMS_COUNT:
        context["summary"] = _("The text is too long to count (more than 5000 characters).")
        return _block("sms_length", context)
    names = {match.group(1) for match in _MERGE_FIELD.finditer(text)}
    if not names:
        context["summary"] = _count(text)
        return _block("sms_length", context)
    lengths = await _field_lengths(db, names)
    # A stand-in of the right length per field; "x" keeps the encoding the text's own.
    typical = _MERGE_FIELD.sub(lambda m: "x" * lengths[m.group(1)][0], text)
    longest = _MERGE_FIELD.sub(lambda m: "x" * lengths[m.group(1)][1], text)
    context["summary"] = _("Typical: %(typical)s. Longest: %(longest)s.") % {
        "typical": _count(typical),
        "longest": _count(longest),
    }
    return _block("sms_length", context)


ROUTES = [email_preview, contact_choices, test_send, sms_length]
