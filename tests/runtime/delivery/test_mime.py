"""The fast wire writer says what the ``email`` package would: same headers, same parts."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from runtime.delivery.address import parse_address
from runtime.delivery.mime import compose, flatten, wire

CASES = [
    (
        "plain ASCII",
        "Hej <hej@example.se>",
        "anna@example.se",
        "Your download",
        "Here it is.",
        None,
    ),
    (
        "Swedish, with HTML and a long URL",
        "Åsa på Butiken <hej@exämple.se>",
        "Örjan <orjan@example.se>",
        "Välkommen, Örjan! " * 6,
        "Hej då\r\nrad två\rrad tre\n" + "x" * 200 + " = 100 % ",
        '<p>Hej <a href="https://example.se/' + "a" * 300 + '">då</a></p>\n.\n',
    ),
    ("injected header", "a@example.se", "b@example.se", "Hi\r\nBcc: evil@x.se", "", "<b>x</b>"),
]


def _parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _summary(message: EmailMessage) -> tuple[object, ...]:
    headers = sorted(
        (name.lower(), str(value))
        for name, value in message.items()
        if name.lower() not in {"content-type", "mime-version", "content-transfer-encoding"}
    )
    parts = [
        (part.get_content_type(), part.get_content())
        for part in message.walk()
        if not part.is_multipart()
    ]
    return message.get_content_type(), headers, parts


@pytest.mark.parametrize(("name", "sender", "to", "subject", "text", "html"), CASES)
def test_wire_reads_back_as_the_email_package_writes_it(
    name: str, sender: str, to: str, subject: str, text: str, html: str | None
) -> None:
    content = {
        "sender": parse_address(sender),
        "to": parse_address(to),
        "subject": subject,
        "text": text,
        "html": html,
        "headers": {"Message-ID": "<tf.1@example.se>", "List-Unsubscribe": "<https://x.se/u>"},
    }
    raw = wire(**content)  # type: ignore[arg-type]
    assert raw is not None
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF line ends only
    assert _summary(_parsed(raw)) == _summary(_parsed(flatten(compose(**content))))  # type: ignore[arg-type]
    assert "Bcc" not in _parsed(raw)


def test_an_address_needing_smtputf8_is_left_to_the_email_package() -> None:
    content = {
        "sender": parse_address("hej@example.se"),
        "to": parse_address("anna.sjöberg@example.se"),
        "subject": "Hej",
        "text": "x",
        "html": None,
        "headers": {},
    }
    assert wire(**content) is None  # type: ignore[arg-type]
