"""The rule language's typed JSON AST (pydantic), and parsing with errors that name the clause.

A rule is one JSON object; which kind it is follows from its key::

    {"all": [rule, ...]}                 every rule holds (an empty list holds)
    {"any": [rule, ...]}                 at least one holds (an empty list does not)
    {"not": rule}
    {"field": "email", "op": "ends_with"...}       a contact field (see ``FIELD_TYPES``)
    {"attribute": "age", "type": "number", "op": "gt", "value": 30}
    {"event": "page.viewed", "where": [filter, ...], "at_least": 2, "within_days": 30}
    {"engagement": "opened", "node_id": "welcome", "flow_id": 3, "within_days": 14}

The semantics (missing values, case, numbers, dates) are in docs/rules.md; the
Python evaluator and the SQL compiler both implement exactly that page.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

ValueType = Literal["string", "number", "boolean", "date"]
Op = Literal[
    "equals",
    "not_equals",
    "in",
    "contains",
    "starts_with",
    "gt",
    "lt",
    "between",
    "is_set",
    "before",
    "after",
    "within_last_days",
]

# Contact fields a rule may name, with the type each is compared as. "tags" is a list.
FIELD_TYPES: dict[str, ValueType | Literal["tags"]] = {
    "email": "string",
    "phone": "string",
    "first_name": "string",
    "last_name": "string",
    "lifecycle_stage": "string",
    "timezone": "string",
    "owner_id": "number",
    "tags": "tags",
}

OPS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "string": ("equals", "not_equals", "in", "contains", "starts_with", "is_set"),
    "number": ("equals", "not_equals", "in", "gt", "lt", "between", "is_set"),
    "boolean": ("equals", "not_equals", "is_set"),
    "date": (
        "equals",
        "not_equals",
        "before",
        "after",
        "between",
        "within_last_days",
        "is_set",
    ),
    "tags": ("contains", "is_set"),
}

# Engagement conditions read the tracking events the email deliverer records.
ENGAGEMENT_EVENTS = {"opened": "email.opened", "clicked": "email.clicked"}

KEY_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$"
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MAX_LIST = 1000
MAX_DAYS = 36_500


def _check_value(kind: str, op: str, value: Any) -> Any:
    """Validate and normalise a comparison value for ``kind`` and ``op``; raise ValueError."""
    if op == "is_set":
        if value is not None:
            raise ValueError("'is_set' takes no value")
        return None
    if op == "in":
        if not isinstance(value, list) or not value:
            raise ValueError("'in' needs a non-empty list of values")
        if len(value) > MAX_LIST:
            raise ValueError(f"'in' takes at most {MAX_LIST} values")
        return [_scalar(kind, item) for item in value]
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise ValueError("'between' needs a list of two values: [low, high]")
        low, high = _scalar(kind, value[0]), _scalar(kind, value[1])
        if low > high:
            raise ValueError("'between' needs the low value first")
        return [low, high]
    if op == "within_last_days":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DAYS:
            raise ValueError(f"'within_last_days' needs a whole number of days (0-{MAX_DAYS})")
        return value
    return _scalar(kind, value)


def _scalar(kind: str, value: Any) -> Any:
    if kind in ("string", "tags"):
        if not isinstance(value, str) or not value:
            raise ValueError("expected a non-empty text value")
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("expected a number")
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError("expected a finite number")
        return number
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError("expected a date written as YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a calendar date") from None
    return value


def _check_op(kind: str, op: str) -> None:
    allowed = OPS_BY_TYPE[kind]
    if op not in allowed:
        raise ValueError(f"{op!r} does not apply to {kind} values; use one of {', '.join(allowed)}")


class _Clause(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _TypedComparison(_Clause):
    """A comparison of one JSON value, read with a declared type."""

    type: ValueType = "string"
    op: Op = "equals"
    value: Any = None

    @field_validator("op")
    @classmethod
    def _op_fits_type(cls, op: str, info: ValidationInfo) -> str:
        _check_op(info.data.get("type", "string"), op)
        return op

    @field_validator("value")
    @classmethod
    def _value_fits_op(cls, value: Any, info: ValidationInfo) -> Any:
        if "op" not in info.data or "type" not in info.data:
            return value
        return _check_value(info.data["type"], info.data["op"], value)


class PropertyFilter(_TypedComparison):
    """A typed comparison on one key of an event's properties."""

    # ``key`` comes before the ``property`` field, which shadows the builtin below it.
    @property
    def key(self) -> str:
        return self.property

    property: str = Field(pattern=KEY_PATTERN)


class AttributeCondition(_TypedComparison):
    """A typed comparison on a custom contact attribute (``contacts.attributes[key]``)."""

    attribute: str = Field(pattern=KEY_PATTERN)

    @property
    def key(self) -> str:
        return self.attribute


class FieldCondition(_Clause):
    """A comparison on a built-in contact field; its type comes from ``FIELD_TYPES``."""

    field: str
    op: Op = "equals"
    value: Any = None

    @field_validator("field")
    @classmethod
    def _known_field(cls, name: str) -> str:
        if name not in FIELD_TYPES:
            raise ValueError(f"unknown field {name!r}; use one of {', '.join(FIELD_TYPES)}")
        return name

    @field_validator("op")
    @classmethod
    def _op_fits_field(cls, op: str, info: ValidationInfo) -> str:
        if "field" in info.data:
            _check_op(FIELD_TYPES[info.data["field"]], op)
        return op

    @field_validator("value")
    @classmethod
    def _value_fits_op(cls, value: Any, info: ValidationInfo) -> Any:
        if "field" not in info.data or "op" not in info.data:
            return value
        return _check_value(FIELD_TYPES[info.data["field"]], info.data["op"], value)

    @property
    def kind(self) -> str:
        return FIELD_TYPES[self.field]


class EventCondition(_Clause):
    """Did (or did not) the customer do ``event`` at least N times, optionally recently?"""

    event: str = Field(min_length=1, max_length=100)
    did: bool = True
    where: tuple[PropertyFilter, ...] = ()
    at_least: int = Field(default=1, ge=1, le=1_000_000)
    within_days: int | None = Field(default=None, ge=0, le=MAX_DAYS)


class EngagementCondition(_Clause):
    """Opened or clicked an email, optionally from one flow and node, optionally recently."""

    engagement: Literal["opened", "clicked"]
    did: bool = True
    flow_id: int | None = None
    node_id: str | None = Field(default=None, min_length=1, max_length=64)
    within_days: int | None = Field(default=None, ge=0, le=MAX_DAYS)

    def as_event(self) -> EventCondition:
        """The equivalent event condition: both evaluators read engagement through it."""
        where: list[PropertyFilter] = []
        if self.flow_id is not None:
            where.append(PropertyFilter(property="flow_id", type="number", value=self.flow_id))
        if self.node_id is not None:
            where.append(PropertyFilter(property="node_id", value=self.node_id))
        return EventCondition(
            event=ENGAGEMENT_EVENTS[self.engagement],
            did=self.did,
            where=tuple(where),
            within_days=self.within_days,
        )


class AllOf(_Clause):
    all: tuple[Rule, ...]


class AnyOf(_Clause):
    any: tuple[Rule, ...]


class NotRule(_Clause):
    negated: Rule = Field(alias="not")


_TAGS = ("all", "any", "not", "field", "attribute", "event", "engagement")


def _kind_of(value: Any) -> str | None:
    if isinstance(value, dict):
        return next((tag for tag in _TAGS if tag in value), None)
    kinds: dict[type, str] = {
        AllOf: "all",
        AnyOf: "any",
        NotRule: "not",
        FieldCondition: "field",
        AttributeCondition: "attribute",
        EventCondition: "event",
        EngagementCondition: "engagement",
    }
    return kinds.get(type(value))


Rule = Annotated[
    Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[NotRule, Tag("not")]
    | Annotated[FieldCondition, Tag("field")]
    | Annotated[AttributeCondition, Tag("attribute")]
    | Annotated[EventCondition, Tag("event")]
    | Annotated[EngagementCondition, Tag("engagement")],
    Discriminator(
        _kind_of,
        custom_error_type="rule_kind",
        custom_error_message=(
            "a rule needs one of the keys all, any, not, field, attribute, event, engagement"
        ),
    ),
]

for _model in (AllOf, AnyOf, NotRule):
    _model.model_rebuild()

_ADAPTER: TypeAdapter[Rule] = TypeAdapter(Rule)
MAX_DEPTH = 32


class RuleIssue(BaseModel):
    """One problem in a rule: ``path`` points at the clause, like ``all[2].value``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidRule(ValueError):
    """A rule that does not parse; ``issues`` lists every problem with its path."""

    def __init__(self, issues: list[RuleIssue]) -> None:
        super().__init__("; ".join(str(issue) for issue in issues))
        self.issues = issues


def _path(loc: tuple[int | str, ...]) -> str:
    """Turn a pydantic error location into a rule path, dropping the union tags.

    pydantic puts the chosen tag before the fields of every rule object, so
    ``("all", "all", 2, "field", "value")`` becomes ``all[2].value``.
    """
    path = ""
    at_rule = True
    previous: int | str | None = None
    for item in loc:
        if at_rule and isinstance(item, str) and item in _TAGS:
            at_rule = False
        elif isinstance(item, int):
            path += f"[{item}]"
            at_rule = previous in ("all", "any")
        else:
            path += f".{item}" if path else item
            at_rule = item == "not"
        previous = item
    return path


def _depth(rule: Rule) -> int:
    if isinstance(rule, AllOf | AnyOf):
        children = rule.all if isinstance(rule, AllOf) else rule.any
        return 1 + max((_depth(child) for child in children), default=0)
    if isinstance(rule, NotRule):
        return 1 + _depth(rule.negated)
    return 1


def parse_rule(raw: Any) -> Rule:
    """Validate a rule's JSON; raise ``InvalidRule`` naming each offending clause."""
    if isinstance(raw, AllOf | AnyOf | NotRule | _Clause):
        return raw  # type: ignore[return-value]
    try:
        rule = _ADAPTER.validate_python(raw)
    except ValidationError as exc:
        issues = [
            RuleIssue(path=_path(tuple(err["loc"])), message=_message(err["msg"]))
            for err in exc.errors()
        ]
        raise InvalidRule(issues) from None
    if _depth(rule) > MAX_DEPTH:
        raise InvalidRule([RuleIssue(path="", message=f"rules nest at most {MAX_DEPTH} deep")])
    return rule


def _message(msg: str) -> str:
    return msg.removeprefix("Value error, ")


def rule_to_json(rule: Rule) -> dict[str, Any]:
    """The canonical JSON form of a parsed rule (what flows and the editor store)."""
    dumped: dict[str, Any] = _ADAPTER.dump_python(rule, mode="json", by_alias=True)
    return dumped


def event_types(rule: Rule) -> frozenset[str]:
    """Every event type the rule reads: what the runtime must load for the Python evaluator."""
    if isinstance(rule, AllOf):
        return frozenset().union(*(event_types(child) for child in rule.all))
    if isinstance(rule, AnyOf):
        return frozenset().union(*(event_types(child) for child in rule.any))
    if isinstance(rule, NotRule):
        return event_types(rule.negated)
    if isinstance(rule, EventCondition):
        return frozenset({rule.event})
    if isinstance(rule, EngagementCondition):
        return frozenset({ENGAGEMENT_EVENTS[rule.engagement]})
    return frozenset()
