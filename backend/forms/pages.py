"""Forms pages for marketers: the list, create and edit a form, and its embed code."""

from __future__ import annotations

import re
from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit import audited, record
from backend.auth.guards import role
from backend.deps import Actor, Db, Now
from backend.flows.routing import (
    assignable_users,
    chosen_members,
    chosen_owner,
    members_of,
    set_members,
    ticked_members,
)
from backend.forms.definition import CONTACT_TARGETS, FormDefinition
from backend.forms.store import apply, definition_of, unique_slug
from backend.i18n import N_, _
from backend.i18n.problems import pydantic_message
from backend.models import Form, Role
from backend.models.ingestion import AttributeDefinition
from backend.web.posted import Posted, read_posted
from backend.web.render import redirect, render
from backend.web.urls import public_base_url

FIELD_TYPES = {
    "text": N_("Text"),
    "email": N_("Email"),
    "tel": N_("Phone"),
    "number": N_("Number"),
    "date": N_("Date"),
    "checkbox": N_("Checkbox"),
    "select": N_("Drop-down"),
    "textarea": N_("Long text"),
}
_ROW = re.compile(r"^field-(\d+)-(name|label|type|required|target|options|remove|position)$")
_FRIENDLY = {
    ("name", "string_pattern_mismatch"): N_(
        "Use lowercase letters, digits and _, starting with a letter (at most 40)."
    ),
    ("redirect_url", "string_pattern_mismatch"): N_("Start the address with http:// or https://."),
}


def blank_values() -> dict[str, Any]:
    return {
        "name": "",
        # A form feeds marketing messages: it asks for consent unless the marketer says otherwise.
        "consent_label": _("Yes, send me news and offers by email."),
        "consent_channel": "email",
        "owner_id": "",
        "members": [],
        "success_message": _("Thank you!"),
        "redirect_url": "",
        "double_opt_in": False,
        "rows": [
            {
                "name": "email",
                "label": _("Email"),
                "type": "email",
                "required": True,
                "target": "email",
                "options": "",
            },
            {
                "name": "first_name",
                "label": _("First name"),
                "type": "text",
                "required": False,
                "target": "first_name",
                "options": "",
            },
        ],
    }


def values_of(form: Form, members: list[int]) -> dict[str, Any]:
    return {
        "name": form.name,
        "consent_label": form.consent_label,
        "consent_channel": form.consent_channel or "",
        "success_message": form.success_message,
        "redirect_url": form.redirect_url or "",
        "double_opt_in": form.double_opt_in,
        "owner_id": str(form.owner_id or ""),
        "members": members,
        "rows": [{**f, "options": "\n".join(f.get("options", []))} for f in form.fields],
    }


def _rows(posted: Posted) -> list[dict[str, Any]]:
    """The field rows as typed, in order, without removed and empty ones."""
    by_index: dict[int, dict[str, str]] = {}
    for key, value in posted.values.items():
        match = _ROW.match(key)
        if match:
            by_index.setdefault(int(match[1]), {})[match[2]] = value.strip()
    rows = []
    # The editor reorders fields by their position (drag or arrows), not by their numbers.
    for index in sorted(by_index, key=lambda i: (_position(by_index[i], i), i)):
        row = by_index[index]
        if row.get("remove") or not (row.get("name") or row.get("label")):
            continue
        rows.append(
            {
                "name": row.get("name", ""),
                "label": row.get("label", ""),
                "type": row.get("type", "text"),
                "required": bool(row.get("required")),
                "target": row.get("target", ""),
                "options": row.get("options", ""),
            }
        )
    return rows


def _position(row: dict[str, str], index: int) -> int:
    value = row.get("position", "")
    return int(value) if value.isdigit() and len(value) < 6 else index


def _selected(posted: Posted, values: dict[str, Any], errors: dict[str, str]) -> int:
    """Which field's settings are shown: the first with a problem, else the one chosen."""
    bad = _bad_rows(errors)
    if bad:
        return min(bad)
    chosen = posted.get("selected_field")
    index = int(chosen) if chosen.isdigit() and len(chosen) < 6 else 0
    return min(index, max(len(values["rows"]) - 1, 0))


def _bad_rows(errors: dict[str, str]) -> set[int]:
    return {int(key.split("-")[1]) for key in errors if _ROW.match(key)}


def _error_key(loc: tuple[Any, ...]) -> str:
    if len(loc) >= 3 and loc[0] == "fields" and isinstance(loc[1], int):
        return f"field-{loc[1]}-{loc[2]}"
    if loc and isinstance(loc[0], str) and loc[0] != "fields":
        return loc[0]
    return "form"


def parse_definition(
    posted: Posted,
) -> tuple[FormDefinition | None, dict[str, Any], dict[str, str]]:
    """Read the editor's fields; returns the definition or the values and errors to re-show."""
    rows = _rows(posted)
    values = {
        "name": posted.get("name"),
        "consent_label": posted.get("consent_label"),
        "consent_channel": posted.get("consent_channel"),
        "success_message": posted.get("success_message"),
        "redirect_url": posted.get("redirect_url"),
        "double_opt_in": bool(posted.get("double_opt_in")),
        "owner_id": posted.get("owner_id"),
        "members": ticked_members(posted),
        "rows": rows,
    }
    raw = {
        **{k: v for k, v in values.items() if k not in ("rows", "owner_id", "members")},
        "consent_channel": values["consent_channel"] or None,
        "redirect_url": values["redirect_url"] or None,
        "fields": [
            {
                **row,
                "options": [o.strip() for o in re.split(r"[\n,]", row["options"]) if o.strip()],
            }
            for row in rows
        ],
    }
    errors: dict[str, str] = {}
    if not rows:
        errors["form"] = _("Add at least one field.")
        return None, values, errors
    try:
        return FormDefinition.model_validate(raw), values, errors
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            key = _error_key(loc)
            friendly = _FRIENDLY.get((str(loc[-1]) if loc else "", err["type"]))
            message = (
                _(friendly)
                if friendly
                else pydantic_message(err["type"], err.get("ctx") or {}, str(err["msg"]))
            )
            errors.setdefault(key, message)
        return None, values, errors


async def _values(db: AsyncSession, form: Form) -> dict[str, Any]:
    return values_of(form, await members_of(db, form_id=form.id))


async def _attribute_keys(db: AsyncSession) -> list[str]:
    return list(await db.scalars(select(AttributeDefinition.key).order_by(AttributeDefinition.key)))


async def _editor(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    form: Form | None,
    values: dict[str, Any],
    errors: dict[str, str],
    *,
    status: int = 200,
    saved: bool = False,
    selected: int = 0,
) -> Template:
    base_url = public_base_url(request)
    return render(
        request,
        "forms/edit.html",
        {
            "nav": "forms",
            "form": form,
            "values": values,
            "errors": errors,
            "saved": saved,
            "selected": selected,
            "bad_rows": _bad_rows(errors),
            "field_types": FIELD_TYPES,
            "targets": [*CONTACT_TARGETS, *(f"attr:{k}" for k in await _attribute_keys(db))],
            "base_url": base_url,
            "definition": definition_of(form) if form is not None else None,
            "owners": await assignable_users(db),
        },
        block="editor",
        status_code=status,
    )


@get("/forms", opt=role(Role.viewer))
async def forms_page(request: Request[Any, Any, Any], db: Db, actor: Actor) -> Template:
    forms = list(
        await db.scalars(select(Form).where(Form.archived_at.is_(None)).order_by(Form.name))
    )
    return render(
        request,
        "forms/list.html",
        {"nav": "forms", "forms": forms, "can_edit": actor.allows(Role.marketer)},
    )


@get("/forms/new", opt=role(Role.marketer))
async def new_form_page(request: Request[Any, Any, Any], db: Db) -> Template:
    return await _editor(request, db, None, blank_values(), {})


def _with_blank_row(values: dict[str, Any]) -> dict[str, Any]:
    blank = {
        "name": "",
        "label": "",
        "type": "text",
        "required": False,
        "target": "",
        "options": "",
    }
    return {**values, "rows": [*values["rows"], blank]}


@post("/forms", opt=role(Role.marketer) | audited("form.created"))
async def create_form(
    request: Request[Any, Any, Any], db: Db, actor: Actor
) -> Response[Any] | Template:
    posted = await read_posted(request)
    definition, values, errors = parse_definition(posted)
    if posted.get("add_field"):
        grown = _with_blank_row(values)
        return await _editor(request, db, None, grown, {}, selected=len(grown["rows"]) - 1)
    if definition is None:
        chosen = _selected(posted, values, errors)
        return await _editor(request, db, None, values, errors, status=422, selected=chosen)
    form = Form(slug=await unique_slug(db, definition.name), created_by_id=actor.id)
    apply(form, definition)
    form.owner_id = await chosen_owner(db, posted.get("owner_id"))
    db.add(form)
    await db.flush()
    await set_members(db, chosen_members(posted, await assignable_users(db)), form_id=form.id)
    record(db, actor, "form.created", form, {"name": form.name, "slug": form.slug})
    return redirect(request, f"/forms/{form.id}")


async def _form(db: AsyncSession, form_id: int) -> Form:
    form = await db.get(Form, form_id)
    if form is None or form.archived_at is not None:
        raise NotFoundException(_("There is no form with this number."))
    return form


@get("/forms/{form_id:int}", opt=role(Role.marketer))
async def edit_form_page(
    request: Request[Any, Any, Any], db: Db, form_id: FromPath[int]
) -> Template:
    form = await _form(db, form_id)
    return await _editor(request, db, form, await _values(db, form), {})


@post("/forms/{form_id:int}", opt=role(Role.marketer) | audited("form.changed"))
async def save_form(
    request: Request[Any, Any, Any], db: Db, actor: Actor, form_id: FromPath[int]
) -> Template:
    form = await _form(db, form_id)
    posted = await read_posted(request)
    definition, values, errors = parse_definition(posted)
    if posted.get("add_field"):
        grown = _with_blank_row(values)
        return await _editor(request, db, form, grown, {}, selected=len(grown["rows"]) - 1)
    if definition is None:
        chosen = _selected(posted, values, errors)
        return await _editor(request, db, form, values, errors, status=422, selected=chosen)
    apply(form, definition)
    form.owner_id = await chosen_owner(db, posted.get("owner_id"))
    await set_members(db, chosen_members(posted, await assignable_users(db)), form_id=form.id)
    record(db, actor, "form.changed", form, {"name": form.name})
    await db.flush()
    values = await _values(db, form)
    chosen = _selected(posted, values, {})
    return await _editor(request, db, form, values, {}, saved=True, selected=chosen)


@post("/forms/{form_id:int}/archive", opt=role(Role.marketer) | audited("form.archived"))
async def archive_form(
    request: Request[Any, Any, Any], db: Db, actor: Actor, clock: Now, form_id: FromPath[int]
) -> Response[Any]:
    """Unpublish: the public page and submissions stop; past submissions stay."""
    form = await _form(db, form_id)
    form.archived_at = clock.now()
    record(db, actor, "form.archived", form, {"name": form.name})
    return redirect(request, "/forms")


ROUTES = [forms_page, new_form_page, create_form, edit_form_page, save_form, archive_form]
