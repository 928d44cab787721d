"""The MIME writer's shortcuts give what the long way gives.

``runtime.delivery.mime`` leaves a plain header value as it is instead of
cleaning it, keeps the RFC 2047 words of recent non-ASCII values and the
quoted-printable parts of recent bodies, and ``runtime.delivery.email``
formats the Date header once a second. Each is checked here against the
computation it stands for, on the values where they could part ways.
"""

from __future__ import annotations

import email.utils
import time
from email import message_from_bytes, policy
from email.header import Header
from email.message import EmailMessage

import pytest

from runtime.delivery.address import parse_address
from runtime.delivery.email import _date_header
from runtime.delivery.mime import _clean, _header, _plain, wire


def _reference_clean(value: str) -> str:
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())


def _reference_header(value: str) -> str:
    cleaned = _reference_clean(value)
    return cleaned if cleaned.isascii() else Header(cleaned, "utf-8").encode()


VALUES = [
    "Your download",
    "Your download, ",
    " leading",
    "two  spaces",
    "tab\there",
    "vertical\x0btab",
    "file\x1cseparator",
    "line\r\nBcc: evil@example.se",
    "next\x85line",
    "no\xa0break",
    "Hej Åsa",
    "Hej  Åsa ",
    "Välkommen, Örjan! " * 6,
    "",
    " ",
    "x" * 1200,
    "<tf.0123@example.se>",
]


@pytest.mark.parametrize("value", VALUES)
def test_a_header_value_comes_out_as_the_full_cleaning_gives_it(value: str) -> None:
    assert _clean(value) == _reference_clean(value)
    assert _header(value) == _reference_header(value)
    assert _header(value) == _reference_header(value)  # the second time from the cache
    if _plain(value):
        assert _reference_clean(value) == value


def _content(to: str, text: str, subject: str = "Hej Åsa") -> dict[str, object]:
    return {
        "sender": parse_address("Butiken <hej@example.se>"),
        "to": parse_address(to),
        "subject": subject,
        "text": text,
        "html": f"<p>{text}</p>",
        "headers": {"Message-ID": "<tf.1@example.se>"},
    }


def _parts(raw: bytes | None) -> list[str]:
    assert raw is not None
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return [str(p.get_content()) for p in message.walk() if not p.is_multipart()]


def test_kept_parts_are_never_another_messages() -> None:
    first = _parts(wire(**_content("anna@example.se", "Hej Anna, räksmörgås")))  # type: ignore[arg-type]
    second = _parts(wire(**_content("bo@example.se", "Hej Bo, räksmörgås")))  # type: ignore[arg-type]
    again = _parts(wire(**_content("anna@example.se", "Hej Anna, räksmörgås")))  # type: ignore[arg-type]
    assert first == ["Hej Anna, räksmörgås", "<p>Hej Anna, räksmörgås</p>"]
    assert second == ["Hej Bo, räksmörgås", "<p>Hej Bo, räksmörgås</p>"]
    assert again == first


def test_a_long_plain_header_still_goes_the_email_packages_way() -> None:
    content = _content("anna@example.se", "x", subject="y" * 1000)
    assert wire(**content) is None  # type: ignore[arg-type]


def test_the_date_header_is_now_to_the_second() -> None:
    before = int(time.time())
    value = _date_header()
    after = int(time.time())
    assert value == _date_header()
    stamp = email.utils.parsedate_to_datetime(value).timestamp()
    assert before <= stamp <= after
    assert value in {email.utils.formatdate(s, localtime=False) for s in range(before, after + 1)}
