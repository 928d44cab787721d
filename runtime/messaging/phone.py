"""Phone numbers and SMS length: E.164 normalisation and segment counting.

``segments`` is what the editor calls to show "152 characters, 1 SMS" while a
marketer types; the SMS deliverer uses ``to_e164`` before handing a number to
a provider.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

__all__ = ["BadNumber", "SmsLength", "segments", "to_e164"]

# The GSM 03.38 default alphabet; the extension table's characters count twice.
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


class BadNumber(ValueError):
    """Not a phone number that can receive SMS."""


def to_e164(number: str, default_region: str = "SE") -> str:
    """``"070-123 45 67"`` -> ``"+46701234567"``; raises ``BadNumber`` for nonsense."""
    try:
        parsed = phonenumbers.parse(number, default_region)
    except phonenumbers.NumberParseException as exc:
        raise BadNumber(f"{number!r} is not a phone number") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise BadNumber(f"{number!r} is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True)
class SmsLength:
    """How a text travels: its encoding, length in encoding units, and number of SMS parts."""

    encoding: str  # "GSM-7" or "UCS-2"
    units: int
    segments: int
    per_segment: int


def segments(text: str) -> SmsLength:
    """Count the SMS parts ``text`` needs.

    GSM-7 fits 160 characters in one SMS and 153 per part when concatenated
    (extension characters such as ``€`` take two); anything outside the GSM
    alphabet switches the whole message to UCS-2: 70, or 67 per part, counted
    in UTF-16 code units (an emoji takes two).
    """
    if all(ch in _GSM7 or ch in _GSM7_EXTENDED for ch in text):
        units = sum(2 if ch in _GSM7_EXTENDED else 1 for ch in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    if units <= single:
        return SmsLength(encoding, units, 1 if units else 0, single)
    return SmsLength(encoding, units, -(-units // multi), multi)
