"""The rule language: a typed JSON AST with two evaluators that always agree.

``parse_rule`` validates JSON (errors name the clause, like ``all[2].value``);
``evaluate`` judges one customer in Python; ``to_sql`` / ``audience_query`` /
``count_audience`` select customers set-based. docs/rules.md is the spec.
"""

from runtime.rules.ast import (
    ENGAGEMENT_EVENTS,
    FIELD_TYPES,
    OPS_BY_TYPE,
    AllOf,
    AnyOf,
    AttributeCondition,
    EngagementCondition,
    EventCondition,
    FieldCondition,
    InvalidRule,
    NotRule,
    PropertyFilter,
    Rule,
    RuleIssue,
    event_types,
    parse_rule,
    rule_to_json,
)
from runtime.rules.evaluate import RuleClock, evaluate, fold, matches_filter
from runtime.rules.field import RuleField
from runtime.rules.sql import audience_query, count_audience, folded, to_sql

__all__ = [
    "ENGAGEMENT_EVENTS",
    "FIELD_TYPES",
    "OPS_BY_TYPE",
    "AllOf",
    "AnyOf",
    "AttributeCondition",
    "EngagementCondition",
    "EventCondition",
    "FieldCondition",
    "InvalidRule",
    "NotRule",
    "PropertyFilter",
    "Rule",
    "RuleClock",
    "RuleField",
    "RuleIssue",
    "audience_query",
    "count_audience",
    "evaluate",
    "event_types",
    "fold",
    "folded",
    "matches_filter",
    "parse_rule",
    "rule_to_json",
    "to_sql",
]
