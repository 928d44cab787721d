"""Between a ``Form`` row and its validated ``FormDefinition``, and picking a form's slug."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.forms.definition import FormDefinition, FormField
from backend.models import Form

SLUG_MAX = 60
RESERVED_SLUGS = {"confirm"}  # paths of their own under /f/


def definition_of(form: Form) -> FormDefinition:
    """The row as a definition (rows are only ever written from a validated definition)."""
    return FormDefinition(
        name=form.name,
        fields=[FormField.model_validate(f) for f in form.fields],
        consent_label=form.consent_label,
        consent_channel=form.consent_channel,
        success_message=form.success_message,
        redirect_url=form.redirect_url,
        double_opt_in=form.double_opt_in,
    )


def apply(form: Form, definition: FormDefinition) -> None:
    form.name = definition.name
    form.fields = [f.model_dump() for f in definition.fields]
    form.consent_label = definition.consent_label
    form.consent_channel = definition.consent_channel
    form.success_message = definition.success_message
    form.redirect_url = definition.redirect_url
    form.double_opt_in = definition.double_opt_in


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:SLUG_MAX].strip("-")
    if not slug or slug in RESERVED_SLUGS:
        return f"{slug or 'form'}-form"
    return slug


async def unique_slug(db: AsyncSession, name: str) -> str:
    """A readable slug for the public URL; a short random suffix when the name is taken."""
    base = slugify(name)
    slug = base
    while await db.scalar(select(Form.id).where(Form.slug == slug)) is not None:
        slug = f"{base[: SLUG_MAX - 7]}-{secrets.token_hex(3)}"
    return slug
