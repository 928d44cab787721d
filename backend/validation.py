"""Small checks on what people type, shared by forms and the API."""

from __future__ import annotations

import re

# Deliberately loose: one @, something on both sides, a dot in the domain, no spaces.
# Deliverability is the mail server's judgement, not ours.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def clean_email(value: str) -> str | None:
    """The email lower-cased and trimmed, or None if it cannot be an address."""
    value = value.strip().lower()
    if len(value) > 320 or not _EMAIL.match(value):
        return None
    return value
