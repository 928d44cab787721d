"""The properties size limit counts ``json.dumps`` characters exactly, whatever the text."""

from __future__ import annotations

import json

import pytest

from backend.contacts.normalize import InvalidValue
from backend.contacts.track import MAX_PROPERTIES_CHARS, _check_properties


def _sized(char: str, size: int) -> dict[str, object]:
    """Properties of ``char`` repeated (padded with "a") whose JSON text has ``size`` characters."""
    empty = len(json.dumps({"t": ""}))
    each = len(json.dumps(char)) - 2
    count, rest = divmod(size - empty, each)
    properties: dict[str, object] = {"t": char * count + "a" * rest}
    assert len(json.dumps(properties)) == size
    return properties


# Plain, two-byte, escaped, DEL (one byte, six characters), astral (twelve characters).
@pytest.mark.parametrize("char", ["a", "é", "\n", "\x7f", "😀"])
def test_the_limit_is_exact(char: str) -> None:
    _check_properties(_sized(char, MAX_PROPERTIES_CHARS))
    with pytest.raises(InvalidValue, match="too large"):
        _check_properties(_sized(char, MAX_PROPERTIES_CHARS + 1))


def test_separators_and_numbers_count_as_json_dumps_writes_them() -> None:
    many = {f"k{n}": [1e-07, 1.5e16, True, None] for n in range(1000)}
    size = len(json.dumps(many))
    assert size > MAX_PROPERTIES_CHARS  # compact, the same values are below the limit
    with pytest.raises(InvalidValue, match=f"{size} characters"):
        _check_properties(many)
