"""Form definitions and submission checks: spam, size, types, mapping to the contact."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from backend.forms.definition import FormDefinition
from backend.forms.submit import MAX_TOTAL_CHARS, check_submission


def _form(**overrides: object) -> FormDefinition:
    spec: dict[str, object] = {
        "name": "Download the guide",
        "fields": [
            {
                "name": "email",
                "label": "Email",
                "type": "email",
                "required": True,
                "target": "email",
            },
            {"name": "first_name", "label": "First name", "target": "first_name"},
            {
                "name": "city",
                "label": "City",
                "type": "select",
                "options": ["Stockholm", "Malmö"],
                "target": "attr:city",
            },
            {
                "name": "employees",
                "label": "Employees",
                "type": "number",
                "target": "attr:employees",
            },
            {"name": "message", "label": "Message", "type": "textarea", "max_length": 50},
        ],
        "consent_label": "Send me news by email",
        "consent_channel": "email",
    }
    spec.update(overrides)
    return FormDefinition.model_validate(spec)


def test_a_valid_submission_maps_answers_to_the_contact() -> None:
    checked = check_submission(
        _form(),
        {
            "email": "Ada@Example.com",
            "first_name": "Ada",
            "city": "Malmö",
            "employees": "12",
            "consent": "on",
        },
    )
    assert checked.accepted and not checked.errors
    assert checked.identify is not None
    assert checked.identify.email == "ada@example.com"
    assert checked.identify.first_name == "Ada"
    assert checked.identify.attributes == {"city": "Malmö", "employees": 12}
    assert checked.consent is True
    assert checked.values["message"] is None


def test_errors_are_reported_per_field() -> None:
    checked = check_submission(
        _form(), {"email": "", "city": "Paris", "employees": "many", "message": "x" * 51}
    )
    assert not checked.accepted
    assert set(checked.errors) == {"email", "city", "employees", "message"}
    assert "fill in Email" in checked.errors["email"]
    assert "at most 50" in checked.errors["message"]


def test_honeypot_and_too_fast_submissions_are_spam() -> None:
    assert check_submission(
        _form(), {"email": "a@example.com", "website_url": "http://spam"}
    ).is_spam
    fast = check_submission(_form(), {"email": "a@example.com"}, started_at=100.0, now_ts=100.5)
    assert fast.is_spam and not fast.accepted
    human = check_submission(_form(), {"email": "a@example.com"}, started_at=100.0, now_ts=109.0)
    assert human.accepted


def test_oversized_submissions_are_refused_whole() -> None:
    checked = check_submission(
        _form(), {"email": "a@example.com", "first_name": "x" * (MAX_TOTAL_CHARS + 1)}
    )
    assert not checked.accepted and "too large" in checked.errors["form"]


def test_the_same_answers_in_the_same_minute_share_a_dedupe_key() -> None:
    from datetime import UTC, datetime

    a = check_submission(_form(), {"email": "a@example.com"})
    b = check_submission(_form(), {"email": "A@example.com "})
    now = datetime(2026, 11, 23, 12, 0, 5, tzinfo=UTC)
    later = datetime(2026, 11, 23, 12, 1, 5, tzinfo=UTC)
    assert a.dedupe_key(1, now) == b.dedupe_key(1, now)
    assert a.dedupe_key(1, now) != a.dedupe_key(1, later)
    assert a.dedupe_key(1, now) != a.dedupe_key(2, now)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fields": [{"name": "x", "label": "X"}]}, "stored as the contact's email"),
        ({"fields": [{"name": "consent", "label": "C", "target": "email"}]}, "reserved"),
        ({"consent_label": ""}, "consent text"),
        ({"double_opt_in": True, "consent_channel": "sms"}, "double opt-in"),
        ({"redirect_url": "javascript:alert(1)"}, "should match pattern"),
    ],
)
def test_bad_form_definitions_are_refused_with_a_reason(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        _form(**change)
