"""What a form asks for, and where each answer is stored."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backend.i18n import gettext as _

FieldType = Literal["text", "email", "tel", "number", "date", "checkbox", "select", "textarea"]
HONEYPOT = "website_url"  # a field people never see; bots fill it in
CONSENT_FIELD = "consent"
# Names the page or the web snippet posts besides the fields.
RESERVED = {
    HONEYPOT,
    CONSENT_FIELD,
    "csrf_token",
    "visitor_id",
    "form_started_at",
    "touchflow_visitor",
}
CONTACT_TARGETS = ("email", "phone", "first_name", "last_name")


class FormField(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="Field name in the event.")
    label: str = Field(min_length=1, max_length=200)
    type: FieldType = "text"
    required: bool = False
    # "email", "phone", "first_name", "last_name", "attr:<key>", or "" (kept on the event only).
    target: str = ""
    options: list[str] = Field(default_factory=list, max_length=100)
    max_length: int = Field(default=500, ge=1, le=5000)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED:
            raise ValueError(_("“%(v)s” is reserved; choose another field name") % {"v": value})
        return value

    @field_validator("target")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if (
            value
            and value not in CONTACT_TARGETS
            and not re.fullmatch(r"attr:[a-z0-9_]{1,64}", value)
        ):
            raise ValueError(_("cannot store answers in “%(v)s”") % {"v": value})
        return value

    @model_validator(mode="after")
    def _select_has_options(self) -> FormField:
        if self.type == "select" and not self.options:
            raise ValueError(_("a drop-down needs at least one option"))
        return self


class FormDefinition(BaseModel):
    """The editable part of a form, validated before it is saved."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    fields: list[FormField] = Field(min_length=1, max_length=50)
    consent_label: str = Field(default="", max_length=1000)
    consent_channel: Literal["email", "sms"] | None = None
    success_message: str = Field(default="Thank you!", max_length=2000)
    redirect_url: str | None = Field(default=None, max_length=500, pattern=r"^https?://")
    double_opt_in: bool = False

    @model_validator(mode="after")
    def _coherent(self) -> FormDefinition:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(_("two fields share a name"))
        if not any(f.target == "email" for f in self.fields):
            raise ValueError(_("a form needs a field stored as the contact's email"))
        if self.consent_channel and not self.consent_label:
            raise ValueError(_("write the consent text people agree to"))
        if self.double_opt_in and self.consent_channel != "email":
            raise ValueError(
                _("double opt-in confirms email consent: set the consent channel to email")
            )
        return self
