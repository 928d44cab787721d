"""JSON bodies: the nesting limit and the NUL refusal hold whichever way the body is checked."""

from __future__ import annotations

import pytest

from backend.validation import MAX_JSON_DEPTH, BadJson, parse_json


def _lists(depth: int) -> str:
    return "[" * depth + "]" * depth


def _objects(depth: int) -> str:
    return '{"a":' * (depth - 1) + '{"b":1}' + "}" * (depth - 1)


@pytest.mark.parametrize("nul", ["", '"\\u0000" '])  # without and with NUL anywhere in the text
@pytest.mark.parametrize("nest", [_lists, _objects])
def test_the_depth_limit_is_exact(nul: str, nest: object) -> None:
    assert callable(nest)
    padding = f'"x": {nul.strip() or "1"}, ' if nul else ""
    at_limit = "{" + padding + f'"deep": {nest(MAX_JSON_DEPTH - 1)}' + "}"
    over = "{" + padding + f'"deep": {nest(MAX_JSON_DEPTH)}' + "}"
    if nul:
        with pytest.raises(BadJson, match="NUL"):
            parse_json(at_limit.encode())
    else:
        assert parse_json(at_limit.encode())["deep"] is not None
    with pytest.raises(BadJson, match="deeper" if not nul else "deeper|NUL"):
        parse_json(over.encode())


@pytest.mark.parametrize(
    "body", ['{"a": "x\\u0000"}', '{"a\\u0000": 1}', '[[["\\u0000"]]]', '"\\u0000"']
)
def test_nul_is_refused_in_values_keys_and_deep_down(body: str) -> None:
    with pytest.raises(BadJson, match="NUL"):
        parse_json(body.encode())
    with pytest.raises(BadJson, match="NUL"):
        parse_json(body)


def test_an_escaped_backslash_before_u0000_is_text_not_nul() -> None:
    assert parse_json(b'{"a": "\\\\u0000"}') == {"a": "\\u0000"}
