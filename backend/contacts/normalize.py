"""Turning what customers and other systems send into clean, comparable values.

Every function raises ``InvalidValue`` with a message a person understands;
callers report it per item and write nothing for that item.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

import email_validator
import phonenumbers
from email_validator import EmailNotValidError, validate_email

from backend.i18n import gettext as _

MAX_ATTRIBUTES = 200
MAX_STRING = 2_000
ATTRIBUTE_KEY_MAX = 64
# Checked addresses remembered per process (a few MB at most).
EMAIL_CACHE_SIZE = 65_536


class InvalidValue(ValueError):
    """A value that cannot be stored, with the field it belongs to."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class AttributeType(StrEnum):
    string = "string"
    number = "number"
    boolean = "boolean"
    date = "date"


# Plain ASCII addresses: dot-atom local part of common characters, host names of
# letters, digits and inner hyphens, a top-level domain of letters.
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}",
    re.ASCII | re.IGNORECASE,
)


def plain_email(stripped: str) -> str | None:
    """The address lower-cased when it is plain ASCII that ``validate_email`` accepts as it
    is; None when only the full check can tell (it then decides).

    The full check costs about as much as storing an event, and most new
    addresses are plain; every rule it applies to such an address is here
    (lengths, labels, a dot and a letter TLD, no reserved name), and
    tests/backend/contacts/test_plain_email.py holds the two to the same answers.
    """
    if len(stripped) > 200 or _PLAIN_EMAIL.fullmatch(stripped) is None:
        return None
    lowered = stripped.lower()
    local, domain = lowered.rsplit("@", 1)
    if len(local) > 64 or "--" in domain:  # "xx--" labels have IDNA rules of their own
        return None
    reserved = email_validator.SPECIAL_USE_DOMAIN_NAMES  # read each time: callers may change it
    if any(domain == name or domain.endswith("." + name) for name in reserved):
        return None
    return lowered


@lru_cache(maxsize=EMAIL_CACHE_SIZE)
def _checked_email(stripped: str) -> str:
    # Checking an address costs more than storing its event; senders repeat addresses.
    # Only good addresses are remembered (lru_cache keeps no exceptions).
    plain = plain_email(stripped)
    if plain is not None:
        return plain
    return str(validate_email(stripped, check_deliverability=False).normalized.lower())


def normalize_email(raw: str, field: str = "email") -> str:
    """Lower-cased, syntax-checked address (no DNS look-up: ingestion must not block)."""
    try:
        return _checked_email(raw.strip())
    except EmailNotValidError as exc:
        raise InvalidValue(
            field,
            _("“%(value)s” is not a valid email address: %(reason)s")
            % {"value": raw, "reason": exc},
        ) from exc


def normalize_phone(raw: str, default_region: str = "SE", field: str = "phone") -> str:
    """E.164 (+46701234567). Numbers without a country code use ``default_region``."""
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidValue(field, _("“%(value)s” is not a phone number") % {"value": raw}) from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidValue(field, _("“%(value)s” is not a valid phone number") % {"value": raw})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def infer_type(value: Any) -> AttributeType:
    """The type a first-seen attribute gets from its value."""
    if isinstance(value, bool):
        return AttributeType.boolean
    if isinstance(value, int | float):
        return AttributeType.number
    if isinstance(value, str) and _parse_date(value) is not None:
        return AttributeType.date
    return AttributeType.string


def _parse_date(value: str) -> datetime | None:
    text = value.strip()
    if len(text) < 10 or not text[:4].isdigit() or text[4] != "-":
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def coerce_attribute(key: str, value: Any, kind: AttributeType) -> Any:
    """Check ``value`` against the attribute's declared type and return the stored form.

    Dates are stored as ISO 8601 UTC strings so both databases compare them as text.
    ``None`` clears the attribute.
    """
    field = f"attributes.{key}"
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise InvalidValue(field, _("nested objects and lists are not supported as attributes"))
    if kind is AttributeType.boolean:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"true", "false", "yes", "no"}:
            return value.strip().lower() in {"true", "yes"}
    elif kind is AttributeType.number:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                number = float(value.replace(",", ".").strip())
            except ValueError:
                pass
            else:
                return int(number) if number.is_integer() else number
    elif kind is AttributeType.date:
        if isinstance(value, datetime):
            stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
            return stamp.astimezone(UTC).isoformat()
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=UTC).isoformat()
        if isinstance(value, str) and (parsed := _parse_date(value)) is not None:
            return parsed.astimezone(UTC).isoformat()
    else:
        text = value if isinstance(value, str) else str(value)
        if len(text) > MAX_STRING:
            raise InvalidValue(
                field, _("text longer than %(max)d characters") % {"max": MAX_STRING}
            )
        return text
    raise InvalidValue(
        field,
        _("“%(value)s” is not a %(type)s (this attribute is declared as %(type)s)")
        % {"value": value, "type": kind.value},
    )


def check_attribute_key(key: str) -> None:
    if not key or len(key) > ATTRIBUTE_KEY_MAX or not key.replace("_", "").isalnum():
        raise InvalidValue(
            f"attributes.{key}",
            _("attribute names use letters, digits and underscores (at most %(max)d)")
            % {"max": ATTRIBUTE_KEY_MAX},
        )
