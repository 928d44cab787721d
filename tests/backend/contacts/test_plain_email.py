"""The plain-address shortcut gives the answer the full email check gives, or none at all."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from backend.contacts.normalize import plain_email


def _full(address: str) -> str | None:
    try:
        return str(validate_email(address, check_deliverability=False).normalized.lower())
    except EmailNotValidError:
        return None


# Near-miss addresses: the characters the shortcut's pattern is about, and the
# reserved names, so most draws sit on one side or the other of a rule.
_ATOM = st.text("aZ09_+-.", min_size=0, max_size=70)
_LABEL = st.one_of(
    st.text("aZ09-", min_size=0, max_size=66),
    st.sampled_from(["test", "local", "localhost", "invalid", "onion", "arpa", "xn--abc", "com"]),
)
_TLD = st.one_of(st.text("aZ9-", min_size=0, max_size=4), st.sampled_from(["se", "com", "c0m"]))
_ADDRESS = st.one_of(
    st.builds(
        lambda local, labels, tld: f"{local}@{'.'.join([*labels, tld])}",
        _ATOM,
        st.lists(_LABEL, min_size=0, max_size=3),
        _TLD,
    ),
    # Mostly plain ones, so the shortcut's own checks (lengths, "--", names) are hit often.
    st.from_regex(
        r"[a-zA-Z0-9_+-]{1,5}(\.[a-z0-9]{1,3}){0,2}@([a-z0-9-]{1,6}\.){1,3}"
        r"(test|local|[a-zA-Z]{2,4})",
        fullmatch=True,
    ),
)


@settings(max_examples=300, deadline=None)
@given(_ADDRESS)
@example("Anna.Svensson@Example.COM")
@example("a..b@example.com")
@example(".a@example.com")
@example("a@example.test")
@example("a@sub.localhost")
@example("a@example.123")
@example("a@-example.com")
@example("a@ab--cd.com")
@example("a@" + "x" * 64 + ".com")
@example("x" * 65 + "@example.com")
def test_the_shortcut_never_disagrees_with_the_full_check(address: str) -> None:
    shortcut = plain_email(address)
    if shortcut is not None:
        assert shortcut == _full(address)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("Anna.Svensson@Example.COM", "anna.svensson@example.com"),
        ("run-17+tag@mail.example.co.uk", "run-17+tag@mail.example.co.uk"),
        ("a@example.test", None),  # reserved: the full check decides
        ("a@xn--bcher-kva.example", None),  # IDNA: the full check decides
        ("åsa@example.se", None),  # not ASCII: the full check decides
        ("a b@example.com", None),
    ],
)
def test_plain_addresses_take_the_shortcut(address: str, expected: str | None) -> None:
    assert plain_email(address) == expected
