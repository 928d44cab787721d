"""Validation problems in the reader's language: pydantic's error types and the graph checks.

pydantic and the runtime's graph checks write English. Each pydantic error type
has a catalogue message here, filled from the error's context; the graph checks
keep their message's template and values (``runtime.graph.GraphError``), so the
translation is looked up before the values go in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backend.i18n import N_, _
from runtime.graph import GraphError

PYDANTIC_MESSAGES = {
    "missing": N_("Fill this in."),
    "missing_argument": N_("Fill this in."),
    "greater_than_equal": N_("Use {ge} or more."),
    "less_than_equal": N_("Use {le} or less."),
    "greater_than": N_("Use more than {gt}."),
    "less_than": N_("Use less than {lt}."),
    "multiple_of": N_("Use a multiple of {multiple_of}."),
    "finite_number": N_("Use a finite number."),
    "string_too_long": N_("Use at most {max_length} characters."),
    "string_too_short": N_("Use at least {min_length} characters."),
    "string_pattern_mismatch": N_("Use letters, digits, _ and - only."),
    "string_type": N_("Use text."),
    "string_unicode": N_("Use text."),
    "int_parsing": N_("Use a whole number."),
    "int_type": N_("Use a whole number."),
    "int_from_float": N_("Use a whole number."),
    "int_parsing_size": N_("This number is too large."),
    "float_parsing": N_("Use a number."),
    "float_type": N_("Use a number."),
    "decimal_parsing": N_("Use a number."),
    "decimal_type": N_("Use a number."),
    "bool_parsing": N_("Choose yes or no."),
    "bool_type": N_("Choose yes or no."),
    "literal_error": N_("Choose one of: {expected}."),
    "enum": N_("Choose one of: {expected}."),
    "too_long": N_("Use at most {max_length} items."),
    "too_short": N_("Use at least {min_length} items."),
    "list_type": N_("Give a list of values."),
    "set_type": N_("Give a list of values."),
    "tuple_type": N_("Give a list of values."),
    "dict_type": N_("Give named values (an object)."),
    "model_type": N_("Give named values (an object)."),
    "model_attributes_type": N_("Give named values (an object)."),
    "extra_forbidden": N_("This setting is not known to this step."),
    "url_parsing": N_("Use a full web address, such as https://www.example.com."),
    "url_type": N_("Use a full web address, such as https://www.example.com."),
    "url_syntax_violation": N_("Use a full web address, such as https://www.example.com."),
    "url_scheme": N_("The address must start with {expected_schemes}."),
    "url_too_long": N_("Use an address of at most {max_length} characters."),
    "date_parsing": N_("Use a date such as 2026-11-27."),
    "date_type": N_("Use a date such as 2026-11-27."),
    "date_from_datetime_parsing": N_("Use a date such as 2026-11-27."),
    "datetime_parsing": N_("Use a date and time such as 2026-11-27 14:30."),
    "datetime_type": N_("Use a date and time such as 2026-11-27 14:30."),
    "datetime_from_date_parsing": N_("Use a date and time such as 2026-11-27 14:30."),
    "timezone_aware": N_("Give the time with its time zone."),
    "time_parsing": N_("Use a time such as 14:30."),
    "time_delta_parsing": N_("Use a duration."),
    "json_invalid": N_("This is not valid JSON."),
    "json_type": N_("This is not valid JSON."),
    "union_tag_invalid": N_("Choose one of: {expected_tags}."),
    "union_tag_not_found": N_("Say which kind this is ({discriminator})."),
    "uuid_parsing": N_("This is not a valid identifier."),
    "none_required": N_("Leave this empty."),
}

# The graph checks' messages (runtime/graph.py), so they are in the catalogue.
GRAPH_MESSAGES = (
    N_("two nodes share this id"),
    N_("a trigger cannot have incoming connections"),
    N_("the flow needs a trigger to enroll anyone"),
    N_("no trigger leads to this node"),
    N_("unknown node type {type!r}"),
    N_("an edge starts at missing node {source!r}"),
    N_("port {port!r} leads to missing node {target!r}"),
    N_("this node has no output port {port!r}"),
    N_("port {port!r} is connected twice"),
    N_("this loop has no wait and would never pause: {loop}"),
)


def pydantic_message(code: str, context: Mapping[str, Any], english: str) -> str:
    """The catalogue message for a pydantic error type, or its own English when unmapped."""
    template = PYDANTIC_MESSAGES.get(code)
    if template is None:
        return english.removeprefix("Value error, ")
    try:
        return _(template).format(**context)
    except (KeyError, IndexError):
        return english


def graph_problem(error: GraphError) -> str:
    """A graph check's problem in the reader's language (without the field it is about)."""
    params = dict(error.params)
    if error.code is not None:
        return pydantic_message(error.code, params, error.message)
    if error.template is not None:
        try:
            return _(error.template).format(**params)
        except (KeyError, IndexError):
            return error.message
    return _(error.message)
