"""Pieces the built-in node types share: durations, time zones, and merge fields.

Merge fields let a marketer personalise text without any code running:
``Hi {{ first_name | there }}`` reads the contact's first name and falls back
to "there". Only the names below resolve; nothing is ever evaluated.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from backend.i18n import N_, gettext
from nodes.sdk import Context, Profile

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
    return PydanticCustomError("touchflow", gettext(message), context)


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
_FIELD = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(?:\|\s*([^}]*?))?\s*\}\}")


def _check_template(text: str) -> str:
    for match in _FIELD.finditer(text):
        name = match.group(1)
        root, _, rest = name.partition(".")
        if name in CONTACT_FIELDS or (root in _ROOTS and rest):
            continue
        raise invalid(
            N_(
                "Unknown merge field {field}: use first_name, last_name, email, phone, "
                "lifecycle_stage, attributes.<name>, trigger.<name> or data.<name>."
            ),
            field=match.group(0),
        )
    return text


Template = Annotated[str, AfterValidator(_check_template)]
"""Text with ``{{ merge_field | fallback }}`` placeholders, checked when the config is saved."""

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


def _lookup(values: Mapping[str, Any], name: str) -> Any:
    current: Any = values
    for part in name.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def render(
    text: str, values: Mapping[str, Any], *, escape: bool = False, in_url: bool = False
) -> str:
    """Fill merge fields; a missing value becomes the fallback (or nothing).

    With ``escape`` values are HTML-escaped (for HTML bodies), with ``in_url``
    percent-encoded (for links); the template itself is the marketer's and is
    left as written.
    """

    def fill(match: re.Match[str]) -> str:
        value = _lookup(values, match.group(1))
        if value is None or value == "":
            value = (match.group(2) or "").strip()
        shown = str(value)
        if in_url:
            return quote(shown, safe="")
        return html.escape(shown) if escape else shown

    return _FIELD.sub(fill, text)
