"""The test-mode panel: a test customer and their events in, the path they would take out."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Template
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from backend.audit import unaudited
from backend.auth.guards import role
from backend.deps import Actor, Db, Now
from backend.i18n import _
from backend.models import Contact, Role
from backend.web.editor.context import editor_context, fragments, load_flow, registry_of
from backend.web.editor.edits import BASE
from backend.web.editor.testmode import describe
from backend.web.posted import read_posted
from nodes.sdk import EventRecord, Profile, Services
from runtime.profiles import load_profiles
from runtime.simulate import simulate

EXAMPLE_EVENTS = '[\n  {"type": "form.submitted", "after_hours": 0}\n]'
EXAMPLE_PROFILE = (
    '{\n  "email": "test@example.com",\n  "first_name": "Test",\n  "attributes": {}\n}'
)


class TrialProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str | None = None
    phone: str | None = None
    first_name: str = ""
    last_name: str = ""
    attributes: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    lifecycle_stage: str | None = None
    timezone: str | None = None
    consent: dict[str, Any] = Field(default_factory=dict)


class TrialEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1)
    after_hours: float = Field(default=0, ge=0, le=24 * 3650)
    properties: dict[str, Any] = Field(default_factory=dict)


def _parse(text: str, what: str, errors: dict[str, str]) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except json.JSONDecodeError as exc:
        errors[what] = _("This is not valid JSON (line %(line)d, column %(col)d).") % {
            "line": exc.lineno,
            "col": exc.colno,
        }
        return None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


@get(BASE + "/test", opt=role(Role.viewer))
async def test_panel(
    request: Request[Any, Any, Any], db: Db, actor: Actor, flow_id: FromPath[int]
) -> Template:
    """The empty test form in the side panel."""
    flow = await load_flow(db, flow_id)
    tryout = {
        "values": {"profile": EXAMPLE_PROFILE, "events": EXAMPLE_EVENTS, "contact": ""},
        "errors": {},
        "run": None,
    }
    context = await editor_context(request, db, actor, flow, tryout=tryout)
    return fragments(context, "panel")


@post(
    BASE + "/test",
    opt=role(Role.viewer)
    | unaudited("test mode: walks the draft for a sample customer and stores nothing"),
)
async def run_test_action(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now, flow_id: FromPath[int]
) -> Template:
    """Walk the test customer through the draft; nothing is sent or saved."""
    form = (await read_posted(request)).values
    flow = await load_flow(db, flow_id)
    errors: dict[str, str] = {}
    profile: Profile | None = None
    email = form.get("contact", "").strip()
    if email:
        contact_id = await db.scalar(select(Contact.id).where(Contact.email == email.lower()))
        if contact_id is None:
            errors["contact"] = _("There is no contact with this email.")
        else:
            profile = (await load_profiles(db, [contact_id], [])).get(("contact", str(contact_id)))
    else:
        raw = _parse(form.get("profile", ""), "profile", errors)
        try:
            fake = TrialProfile.model_validate(raw or {})
            profile = Profile(kind="contact", id="0", **fake.model_dump())
        except ValidationError as exc:
            errors.setdefault("profile", _first_error(exc))
    start = clock.now()
    events: list[EventRecord] = []
    raw_events = _parse(form.get("events", ""), "events", errors)
    if raw_events is not None and not isinstance(raw_events, list):
        errors["events"] = _("List the events in square brackets: [ {...}, {...} ].")
    for index, item in enumerate(raw_events if isinstance(raw_events, list) else []):
        try:
            event = TrialEvent.model_validate(item)
        except ValidationError as exc:
            errors.setdefault("events", f"#{index + 1}: {_first_error(exc)}")
            continue
        at = start + timedelta(hours=event.after_hours)
        events.append(EventRecord(event.type, at, event.properties, id=index + 1, source="test"))
    run = None
    if not errors and profile is not None:
        services: Services = request.app.state.runtime.services
        simulation = await simulate(
            flow.draft_graph,
            registry_of(request),
            profile,
            events,
            start=start,
            services=services,
            flow_id=flow.id,
        )
        run = describe(simulation, start)
    tryout = {"values": form, "errors": errors, "run": run}
    context = await editor_context(request, db, actor, flow, tryout=tryout)
    context["trace"] = run.trace if run else None
    return fragments(context, "panel", "graph")


ROUTES = [test_panel, run_test_action]
