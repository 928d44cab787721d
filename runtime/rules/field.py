"""A rule as a field of a node's config model: parsed, with one clear error message."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from runtime.rules.ast import InvalidRule, Rule, parse_rule, rule_to_json


def _validate(value: Any) -> Rule:
    try:
        return parse_rule(value)
    except InvalidRule as exc:
        # One message naming every clause, so the editor can show it under the field.
        raise PydanticCustomError("invalid_rule", "{detail}", {"detail": str(exc)}) from None


RuleField = Annotated[
    Rule,
    PlainValidator(_validate),
    PlainSerializer(rule_to_json, return_type=dict),
    WithJsonSchema({"type": "object", "format": "rule"}),
]
"""Use as ``audience: RuleField`` in a config model; errors read ``all[2].value: ...``."""
