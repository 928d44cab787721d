"""``/api/v1/flows``: the flows, their status, and starting one for a customer."""

from __future__ import annotations

from typing import Any

from litestar import get, post
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, NotFoundException, ValidationException
from litestar.params import JSONBody
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select

from backend.api.ingest import RUNTIME
from backend.api.responses import AUTH, BODY, errors
from backend.api.schemas import FlowOut
from backend.audit import audited, record
from backend.auth.guards import role
from backend.contacts.normalize import InvalidValue, normalize_email
from backend.deps import Actor, Db
from backend.flows.summaries import flow_summaries
from backend.i18n import gettext as _
from backend.models import Contact, Role, Visitor
from backend.validation import DB_INT_MAX, RowId
from nodes.sdk import Profile
from nodes.sdk.transition import unsubscribed
from runtime.engine import Runtime
from runtime.entries import FlowNotStartable

FlowRuntime = NamedDependency[Runtime]


class StartIn(BaseModel):
    """Who to start the flow for (exactly one way of naming them) and data for the flow."""

    contact_id: int | None = Field(default=None, ge=1, le=DB_INT_MAX)
    external_id: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = Field(default=None, min_length=3, max_length=320)
    visitor_id: str | None = Field(default=None, min_length=1, max_length=64)
    data: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_customer(self) -> StartIn:
        named = [self.contact_id, self.external_id, self.email, self.visitor_id]
        if sum(value is not None for value in named) != 1:
            raise ValueError("name the customer once: contact_id, external_id, email or visitor_id")
        return self


class StartOut(BaseModel):
    journey_id: int | None
    started: bool
    unsubscribed: bool = Field(
        default=False,
        description=(
            "The customer withdrew consent (for email or for everything): the journey sends "
            "only the flow's transactional messages (a receipt, a requested download), no "
            "marketing, and under the exit rule 'unsubscribed' it ends at the first step "
            "with no transactional message left ahead."
        ),
    )


@get("/flows", opt=role(Role.viewer), responses=errors(*AUTH))
async def list_flows(db: Db) -> list[FlowOut]:
    """Every flow, most recently changed first."""
    return [FlowOut.model_validate(summary.flow) for summary in await flow_summaries(db)]


async def _contact(db: Db, data: StartIn) -> tuple[int | None, bool]:
    """The contact's id (None for a visitor) and whether they withdrew consent."""
    if data.visitor_id is not None:
        if await db.get(Visitor, data.visitor_id) is None:
            raise NotFoundException(
                _("No such visitor: the snippet has not seen %(id)s.") % {"id": data.visitor_id}
            )
        return None, False
    if data.contact_id is not None:
        where = Contact.id == data.contact_id
    elif data.external_id is not None:
        where = Contact.external_id == data.external_id
    else:
        try:
            email = normalize_email(data.email or "")
        except InvalidValue as exc:
            raise ValidationException(detail=exc.message, extra={"field": exc.field}) from None
        where = Contact.email == email
    found = (
        await db.execute(
            select(Contact.id, Contact.consent).where(where, Contact.erased_at.is_(None))
        )
    ).first()
    if found is None:
        raise NotFoundException(_("No such contact: identify them first, then start the flow."))
    return int(found.id), unsubscribed(
        Profile(kind="contact", id=str(found.id), consent=found.consent or {})
    )


@post(
    "/flows/{flow_id:int}/start",
    opt=role(Role.marketer) | audited("flow.started"),
    status_code=202,
    dependencies=RUNTIME,
    responses=errors(*BODY, 404, 409),
)
async def start_flow(
    db: Db, actor: Actor, runtime: FlowRuntime, flow_id: RowId, data: JSONBody[StartIn]
) -> StartOut:
    """Start the flow's "API call" trigger for one customer; ``started`` is false when the
    flow's re-entry policy keeps them out, ``unsubscribed`` says the journey sends them only
    the flow's transactional messages."""
    contact_id, withdrawn = await _contact(db, data)
    # The runtime starts the journey in a transaction of its own: end this read
    # first, so the request does not hold a connection (SQLite's writer lane) meanwhile.
    await db.commit()
    try:
        journey_id = await runtime.start(
            flow_id, contact_id=contact_id, visitor_id=data.visitor_id, data=data.data
        )
    except FlowNotStartable as exc:
        raise ClientException(status_code=409, detail=str(exc)) from exc
    started = journey_id is not None
    if started:
        details = {"journey": journey_id, "contact": contact_id, "visitor": data.visitor_id}
        record(db, actor, "flow.started", ("flows", flow_id), details)
    return StartOut(journey_id=journey_id, started=started, unsubscribed=started and withdrawn)


ROUTES = [list_flows, start_flow]
