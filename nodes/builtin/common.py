"""Pieces the built-in node types share: durations, time zones, and message templates.

Texts are templates in the SDK's one template language (``nodes.sdk.templates``,
sandboxed Jinja): ``Hi {{ first_name | default("there") }}`` reads the contact's
first name and falls back to "there"; ``{% if ... %}`` chooses text. Only the
names below resolve, and a config naming another is refused when it is saved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from nodes.sdk import N_, Context, Profile
from nodes.sdk.i18n import translate
from nodes.sdk.templates import MAX_OUTPUT, TemplateProblem, render_template, template_names

__all__ = [
    "CONTACT_FIELDS",
    "Duration",
    "Link",
    "Strict",
    "Template",
    "TimeZoneName",
    "invalid",
    "merge_values",
    "render",
    "zone",
]


def invalid(message: str, **context: Any) -> PydanticCustomError:
    """A validation error whose message is shown as is (no "Value error," prefix).

    ``message`` is an ``N_``-marked template, shown in the request's language; ``{name}``
    placeholders come from ``context``.
    """
    return PydanticCustomError("touchflow", translate(message), context)


class Strict(BaseModel):
    """Base for config models: unknown keys are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid(
            N_("Unknown time zone {zone}: use a name like Europe/Stockholm or America/New_York."),
            zone=repr(name),
        ) from None


def _check_zone(name: str) -> str:
    zone(name)
    return name


TimeZoneName = Annotated[str, AfterValidator(_check_zone)]

Unit = Literal["minutes", "hours", "days", "weeks"]


class Duration(Strict):
    """An amount of time as a marketer types it: 2 days, 90 minutes."""

    amount: float = Field(
        default=1,
        gt=0,
        le=3650,
        title=N_("Amount"),
        description=N_("How many units to wait."),
    )
    unit: Unit = Field(
        default="days", title=N_("Unit"), description=N_("Minutes, hours, days or weeks.")
    )

    def delta(self) -> timedelta:
        return timedelta(**{self.unit: self.amount})


CONTACT_FIELDS = ("first_name", "last_name", "email", "phone", "lifecycle_stage")
_ROOTS = ("attributes", "trigger", "data")
_NAMES = frozenset((*CONTACT_FIELDS, *_ROOTS))


def _check_template(text: str) -> str:
    try:
        names = template_names(text)
    except TemplateProblem as exc:
        raise invalid(N_("This text cannot be read: {problem}."), problem=str(exc)) from None
    unknown = sorted(names - _NAMES)
    if unknown:
        raise invalid(
            N_(
                "Unknown merge field {field}: use first_name, last_name, email, phone, "
                "lifecycle_stage, attributes.<name>, trigger.<name> or data.<name>."
            ),
            field="{{ " + unknown[0] + " }}",
        )
    return text


Template = Annotated[str, AfterValidator(_check_template)]
"""A template (``{{ first_name | default("there") }}``, ``{% if %}``), checked when saved."""

_LINK = re.compile(r"https?://[^\s/{}]+[^\s]*(\{\{[^}]*\}\}\S*)*", re.IGNORECASE)


def _check_link(text: str) -> str:
    text = text.strip()
    if text and not _LINK.fullmatch(text):
        raise invalid(N_("Use a full web address starting with https:// or http://."))
    return _check_template(text)


Link = Annotated[str, AfterValidator(_check_link)]
"""A web address (may contain merge fields); empty means none."""


def merge_values(ctx: Context[Any]) -> dict[str, Any]:
    """What merge fields read: the contact, its attributes, the trigger event, journey data."""
    profile: Profile = ctx.profile
    trigger = ctx.journey.data.get("trigger")
    values: dict[str, Any] = {name: getattr(profile, name) for name in CONTACT_FIELDS}
    values["attributes"] = dict(profile.attributes)
    values["trigger"] = dict(trigger.get("properties") or {}) if isinstance(trigger, dict) else {}
    values["data"] = dict(ctx.journey.data)
    return values


def render(
    text: str, values: Mapping[str, Any], *, escape: bool = False, in_url: bool = False
) -> str:
    """Fill the template; a missing value becomes its fallback (or nothing).

    With ``escape`` values are HTML-escaped (for HTML bodies), with ``in_url``
    percent-encoded (for links); the template itself is the marketer's and is
    left as written.
    """
    if _literal(text):
        return text
    return render_template(text, values, html=escape, url=in_url)


def _literal(text: str) -> bool:
    """Whether ``text`` renders as itself: no brace (every template tag starts with one)
    and no carriage return (the template engine writes line ends as LF). Most bodies and
    many subjects are such text, and rendering one through the engine costs a fresh
    context each time."""
    return "{" not in text and "\r" not in text and len(text) <= MAX_OUTPUT
