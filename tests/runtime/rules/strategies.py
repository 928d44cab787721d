"""Hypothesis strategies: random rules and random customers that exercise the edge cases.

Values are drawn from small pools on purpose, so rules and data collide often:
strings differ only in (ASCII or Unicode) case or in LIKE wildcards, numbers sit on the
boundaries, dates straddle "today" in several time zones, and attributes
change JSON type from one contact to the next.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

NOW = datetime(2030, 3, 31, 22, 30, tzinfo=UTC)
TIMEZONES = ["UTC", "Europe/Stockholm", "America/Los_Angeles", "Pacific/Kiritimati"]
# Text differs in ASCII case, in non-ASCII case (Swedish/German/French letters,
# "ẞ" whose lowercase is "ß", "İ" whose lowercase is two code points "i̇") and
# in LIKE wildcards. Every letter here was checked to lowercase the same in
# Python and in PostgreSQL's ICU root locale. Greek "Σ" is left out on purpose:
# its lowercase depends on the letters around it (final "ς"), so a folded
# substring need not be a substring of the folded text.
WORDS = [
    *["vip", "VIP", "åsa", "Åsa", "ÅSA", "malmö", "MALMÖ", "Ö", "ö", "Ängel", "äNGEL"],
    *["Straße", "STRASSE", "strasse", "ß", "ẞ", "Émile", "éMILE", "über", "ÜBER"],
    *["İz", "i̇z", "iz", "i", "a%b", "a_b", "ab"],
]
NUMBERS = [-2.5, -1, 0, 0.5, 1, 2, 2.0, 3, 10, 99.75, 100, 1e6]
DATES = [
    (NOW.date() + timedelta(days=offset)).isoformat() for offset in (-40, -8, -7, -6, -1, 0, 1, 2)
]
ODD_DATES = ["2030-02-30", "2030-3-1", "20300301", "2030-03-31T23:30:00+02:00", "2030-04-01T01:00Z"]
ATTRIBUTE_KEYS = ["age", "city", "vip", "born", "plan"]
PROPERTY_KEYS = ["form_id", "amount", "url", "paid"]
EVENT_TYPES = ["page.viewed", "form.submitted", "email.opened", "email.clicked"]
NODE_IDS = ["welcome", "reminder"]

words = st.sampled_from(WORDS)
numbers = st.sampled_from(NUMBERS)
dates = st.sampled_from(DATES)


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value a customer might have under a key, of any type."""
    return st.one_of(
        st.none(),
        st.booleans(),
        numbers,
        words,
        st.just(""),
        dates,
        st.sampled_from(ODD_DATES),
        st.lists(words, max_size=2),
    )


def json_objects(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), json_values(), max_size=len(keys))


def contacts() -> st.SearchStrategy[dict[str, Any]]:
    text = st.one_of(st.none(), st.just(""), words)
    return st.fixed_dictionaries(
        {
            "email": st.one_of(st.none(), words.map(lambda w: f"{w}@Example.test")),
            "phone": st.one_of(st.none(), st.sampled_from(["+46701234567", "+1555"])),
            "first_name": st.one_of(st.just(""), words),
            "last_name": st.just(""),
            "lifecycle_stage": st.sampled_from(["subscriber", "lead", "customer", "LEAD"]),
            "timezone": text,
            "tags": st.lists(st.one_of(words, st.just(""), numbers), max_size=3),
            "attributes": json_objects(ATTRIBUTE_KEYS),
        }
    )


def events() -> st.SearchStrategy[dict[str, Any]]:
    properties = json_objects(PROPERTY_KEYS)
    engagement = st.fixed_dictionaries(
        {"node_id": st.sampled_from(NODE_IDS), "flow_id": st.sampled_from([1, 2])}
    )
    return st.fixed_dictionaries(
        {
            "type": st.sampled_from(EVENT_TYPES),
            "ago": st.sampled_from([0, 1, 3, 6.99, 7, 7.01, 29, 31, -1]),
            "properties": st.one_of(properties, engagement),
        }
    )


def _comparison(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    scalar = {"string": words, "number": numbers, "boolean": st.booleans(), "date": dates}[kind]
    ops: list[st.SearchStrategy[dict[str, Any]]] = [
        st.fixed_dictionaries({"op": st.just("is_set")}),
        st.fixed_dictionaries({"op": st.sampled_from(["equals", "not_equals"]), "value": scalar}),
    ]
    if kind in ("string", "number"):
        ops.append(
            st.fixed_dictionaries(
                {"op": st.just("in"), "value": st.lists(scalar, min_size=1, max_size=3)}
            )
        )
    if kind == "string":
        ops.append(
            st.fixed_dictionaries(
                {"op": st.sampled_from(["contains", "starts_with"]), "value": scalar}
            )
        )
    if kind in ("number", "date"):
        ordered = ["gt", "lt"] if kind == "number" else ["before", "after"]
        ops.append(st.fixed_dictionaries({"op": st.sampled_from(ordered), "value": scalar}))
        ops.append(
            st.fixed_dictionaries(
                {"op": st.just("between"), "value": st.lists(scalar, min_size=2, max_size=2)}
            ).map(lambda d: {**d, "value": sorted(d["value"])})
        )
    if kind == "date":
        ops.append(
            st.fixed_dictionaries(
                {"op": st.just("within_last_days"), "value": st.sampled_from([0, 1, 7, 30])}
            )
        )
    return st.one_of(ops)


kinds = st.sampled_from(["string", "number", "boolean", "date"])


def attribute_conditions() -> st.SearchStrategy[dict[str, Any]]:
    return kinds.flatmap(
        lambda kind: _comparison(kind).map(lambda cmp: {"attribute": "?", "type": kind, **cmp})
    ).flatmap(lambda c: st.sampled_from(ATTRIBUTE_KEYS).map(lambda key: {**c, "attribute": key}))


def property_filters() -> st.SearchStrategy[dict[str, Any]]:
    return kinds.flatmap(
        lambda kind: st.tuples(st.sampled_from(PROPERTY_KEYS), _comparison(kind)).map(
            lambda pair: {"property": pair[0], "type": kind, **pair[1]}
        )
    )


def field_conditions() -> st.SearchStrategy[dict[str, Any]]:
    strings = st.sampled_from(["email", "phone", "first_name", "lifecycle_stage", "timezone"])
    return st.one_of(
        st.tuples(strings, _comparison("string")).map(lambda p: {"field": p[0], **p[1]}),
        _comparison("number").map(lambda cmp: {"field": "owner_id", **cmp}),
        st.one_of(
            st.just({"field": "tags", "op": "is_set"}),
            words.map(lambda w: {"field": "tags", "op": "contains", "value": w}),
        ),
    )


def event_conditions() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "event": st.sampled_from(EVENT_TYPES),
            "did": st.booleans(),
            "where": st.lists(property_filters(), max_size=2),
            "at_least": st.sampled_from([1, 2, 3]),
            "within_days": st.sampled_from([None, 0, 1, 7, 30]),
        }
    )


def engagement_conditions() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "engagement": st.sampled_from(["opened", "clicked"]),
            "did": st.booleans(),
            "flow_id": st.sampled_from([None, 1, 2]),
            "node_id": st.sampled_from([None, *NODE_IDS]),
            "within_days": st.sampled_from([None, 7]),
        }
    )


def rules() -> st.SearchStrategy[dict[str, Any]]:
    leaves = st.one_of(
        field_conditions(), attribute_conditions(), event_conditions(), engagement_conditions()
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=3).map(lambda items: {"all": items}),
            st.lists(children, max_size=3).map(lambda items: {"any": items}),
            children.map(lambda child: {"not": child}),
        ),
        max_leaves=6,
    )
