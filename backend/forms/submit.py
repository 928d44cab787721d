"""Checking a form submission and turning it into a contact update and an event.

Spam and abuse are stopped before anything is written: a hidden honeypot
field, a minimum fill-in time, size limits per field and in total, and a rate
limit per address (at the route). A repeated submission (double click,
browser resubmit) within the same minute is stored once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from backend.contacts.normalize import InvalidValue, normalize_email, normalize_phone
from backend.contacts.schemas import IdentifyIn
from backend.forms.definition import CONSENT_FIELD, HONEYPOT, FormDefinition, FormField
from backend.i18n import gettext as _

MAX_TOTAL_CHARS = 20_000
MIN_FILL_SECONDS = 2.0


@dataclass
class CheckedSubmission:
    """The verdict on a submission: accepted (``identify`` set), spam, or field errors."""

    values: dict[str, Any] = field(default_factory=dict)
    identify: IdentifyIn | None = None  # set only when the submission is accepted
    consent: bool = False
    is_spam: bool = False
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.identify is not None

    def dedupe_key(self, form_id: int, now: datetime) -> str:
        """Same form, same answers, same minute: the same submission."""
        digest = hashlib.sha256(
            json.dumps(self.values, sort_keys=True, default=str).encode()
        ).hexdigest()[:32]
        return f"form:{form_id}:{digest}:{now:%Y%m%d%H%M}"


def _first(raw: Mapping[str, Any], name: str) -> str:
    value = raw.get(name)
    if isinstance(value, list):
        value = value[0] if value else ""
    return "" if value is None else str(value).strip()


def _check_field(spec: FormField, text: str) -> Any:
    if len(text) > spec.max_length:
        raise InvalidValue(spec.name, _("at most %(n)d characters") % {"n": spec.max_length})
    if spec.type == "checkbox":
        return text.lower() in {"on", "true", "yes", "1"}
    if not text:
        if spec.required:
            raise InvalidValue(spec.name, _("please fill in %(label)s") % {"label": spec.label})
        return None
    if spec.type == "email" or spec.target == "email":
        return normalize_email(text, spec.name)
    if spec.type == "tel" or spec.target == "phone":
        return normalize_phone(text, field=spec.name)
    if spec.type == "number":
        try:
            number = float(text.replace(",", "."))
        except ValueError as exc:
            raise InvalidValue(spec.name, _("please enter a number")) from exc
        return int(number) if number.is_integer() else number
    if spec.type == "date":
        try:
            return datetime.strptime(text, "%Y-%m-%d").date().isoformat()
        except ValueError as exc:
            raise InvalidValue(spec.name, _("please enter a date as YYYY-MM-DD")) from exc
    if spec.type == "select" and text not in spec.options:
        raise InvalidValue(spec.name, _("please choose one of the options"))
    return text


def check_submission(
    form: FormDefinition,
    raw: Mapping[str, Any],
    *,
    started_at: float | None = None,
    now_ts: float | None = None,
) -> CheckedSubmission:
    """Validate answers against the form; errors are per field, in ``errors``."""
    if _first(raw, HONEYPOT):
        return CheckedSubmission(is_spam=True)
    if started_at is not None and now_ts is not None and now_ts - started_at < MIN_FILL_SECONDS:
        return CheckedSubmission(is_spam=True)
    total = sum(len(_first(raw, spec.name)) for spec in form.fields)
    if total > MAX_TOTAL_CHARS:
        return CheckedSubmission(errors={"form": _("the form is too large to send")})

    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in form.fields:
        try:
            values[spec.name] = _check_field(spec, _first(raw, spec.name))
        except InvalidValue as exc:
            errors[spec.name] = exc.message
    consent = bool(form.consent_channel) and _first(raw, CONSENT_FIELD).lower() in {
        "on",
        "true",
        "1",
        "yes",
    }
    if errors:
        return CheckedSubmission(errors=errors)

    contact: dict[str, Any] = {"attributes": {}}
    for spec in form.fields:
        value = values.get(spec.name)
        if value is None or not spec.target:
            continue
        if spec.target.startswith("attr:"):
            contact["attributes"][spec.target[5:]] = value
        else:
            contact[spec.target] = value
    return CheckedSubmission(
        values=values, identify=IdentifyIn.model_validate(contact), consent=consent
    )
