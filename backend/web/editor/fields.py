"""Config forms generated from a node type's pydantic model (DESIGN principle 6).

``config_fields`` turns the model's JSON schema into form fields (text,
number, select for enums, checkbox, textarea for JSON and rule fields);
``read_config`` turns a submitted form back into config values and
``config_errors`` maps pydantic's messages onto those fields. Nothing here
knows any particular node type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from backend.i18n import _
from backend.i18n.problems import pydantic_message

Widget = Literal["text", "textarea", "integer", "number", "select", "checkbox", "list", "json"]
FORM_ERROR = "__all__"
# A string field this long (or marked ``json_schema_extra={"widget": "textarea"}``) gets a
# textarea; addresses (2,000) stay one line.
LONG_TEXT = 2000
# JSON-schema ``format`` values that make a field a picker (backend.web.editor.references).
REFERENCES = ("node", "form", "content_block", "user", "flow")


@dataclass(frozen=True)
class ConfigField:
    """One input of a config form, with its current value as the form shows it."""

    name: str
    label: str
    widget: Widget
    required: bool = False
    nullable: bool = False
    help: str = ""
    choices: tuple[tuple[str, str], ...] = ()
    value: str = ""
    checked: bool = False
    enum_values: tuple[Any, ...] = field(default=(), compare=False)
    # A write-only value (a signing secret): never sent back to the browser; ``checked``
    # says whether one is saved, and an empty input keeps it.
    secret: bool = False
    # A picker's kind (node, form, content_block, user, flow) and its (value, name, id) options.
    ref: str = ""
    options: tuple[tuple[str, str, str], ...] = ()
    rule: bool = False  # a rule (JSON schema format "rule"): the builder and live count go with it


def _resolve(prop: dict[str, Any], defs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Follow ``$ref`` and unwrap ``Optional[...]``: the effective schema and whether null is ok."""
    nullable = False
    if "anyOf" in prop:
        options = [option for option in prop["anyOf"] if option.get("type") != "null"]
        nullable = len(options) < len(prop["anyOf"])
        prop = {**prop, **options[0]} if len(options) == 1 else {"type": "object"}
        prop.pop("anyOf", None)
    if "allOf" in prop and len(prop["allOf"]) == 1:
        prop = {**prop, **prop["allOf"][0]}
    ref = prop.get("$ref")
    if isinstance(ref, str):
        prop = {
            **defs.get(ref.rsplit("/", 1)[-1], {}),
            **{k: v for k, v in prop.items() if k != "$ref"},
        }
    return prop, nullable


def _widget(prop: dict[str, Any]) -> Widget:
    kind = prop.get("type")
    if "enum" in prop or "const" in prop:
        return "select"
    if kind == "boolean":
        return "checkbox"
    if kind == "integer":
        return "integer"
    if kind == "number":
        return "number"
    if kind == "string":
        long = prop.get("widget") == "textarea" or prop.get("maxLength", 0) > LONG_TEXT
        return "textarea" if long else "text"
    if kind == "array" and prop.get("items", {}).get("type") == "string":
        return "list"
    # Objects, nested models, rule ASTs and ``Any``: edited as JSON.
    return "json"


def _display(widget: Widget, value: Any) -> str:
    if value is None:
        return ""
    if widget == "json":
        return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    if widget == "list" and isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if widget == "select" and isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # "2", not "2.0", for a float field holding a whole number
    return str(value)


def _choice_key(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _field(
    name: str, label: str, prop: dict[str, Any], nullable: bool, required: bool, value: Any
) -> ConfigField:
    widget = _widget(prop)
    enum_values: tuple[Any, ...] = tuple(prop["enum"]) if "enum" in prop else ()
    if "const" in prop:
        enum_values = (prop["const"],)
    if prop.get("writeOnly"):
        return ConfigField(
            name=name,
            label=label,
            widget=widget,
            required=required,
            nullable=nullable,
            help=str(prop.get("description") or ""),
            checked=bool(value),
            secret=True,
        )
    return ConfigField(
        name=name,
        label=label,
        widget=widget,
        required=required,
        nullable=nullable,
        help=_(str(prop["description"])) if prop.get("description") else "",
        choices=tuple((_choice_key(v), str(v)) for v in enum_values),
        value=_display(widget, value),
        checked=bool(value) if widget == "checkbox" else False,
        enum_values=enum_values,
        ref=str(prop["format"]) if prop.get("format") in REFERENCES else "",
        rule=prop.get("format") == "rule",
    )


def _title(name: str, prop: dict[str, Any]) -> str:
    title = prop.get("title")
    return _(str(title)) if title else name.replace("_", " ").capitalize()


def config_fields(model: type[BaseModel], config: Mapping[str, Any]) -> list[ConfigField]:
    """The form for ``model``, filled with ``config`` (or the schema's defaults).

    A nested model (a duration: amount and unit) becomes one input per field,
    named ``parent.child``; anything deeper or optional is edited as JSON.
    """
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    fields = []
    for name, raw_prop in schema.get("properties", {}).items():
        prop, nullable = _resolve(raw_prop, defs)
        value = config[name] if name in config else prop.get("default")
        nested = prop.get("properties")
        if isinstance(nested, dict) and not nullable:
            inner = value if isinstance(value, Mapping) else {}
            inner_required = set(prop.get("required", []))
            for sub, raw_sub in nested.items():
                sub_prop, sub_nullable = _resolve(raw_sub, defs)
                fields.append(
                    _field(
                        f"{name}.{sub}",
                        f"{_title(name, prop)}: {_title(sub, sub_prop).lower()}",
                        sub_prop,
                        sub_nullable,
                        sub in inner_required,
                        inner[sub] if sub in inner else sub_prop.get("default"),
                    )
                )
            continue
        fields.append(_field(name, _title(name, prop), prop, nullable, name in required, value))
    return fields


def _number(text: str, integer: bool) -> Any:
    try:
        return int(text) if integer else float(text)
    except ValueError:
        return text  # pydantic explains what is wrong with it


def read_config(
    model: type[BaseModel], form: Mapping[str, str], saved: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Submitted form -> (config values, errors found while reading them).

    Values that cannot be converted are kept as typed, so the draft keeps what
    the marketer wrote and validation reports it. An empty optional field is
    null; an empty field with a default falls back to the default; an empty
    secret field keeps the ``saved`` value (the form never shows it).
    """
    config: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for item in config_fields(model, {}):
        parent, _dot, child = item.name.partition(".")
        # Nested fields fill a dict of their own; it is only sent when one of them is.
        target = config.setdefault(parent, {}) if child else config
        key = child or item.name
        if item.widget == "checkbox":
            target[key] = item.name in form
            continue
        text = form.get(item.name, "")
        if item.widget != "textarea":
            text = text.strip()
        if text == "":
            if item.secret and not child and (saved or {}).get(key):
                target[key] = (saved or {})[key]
            elif item.nullable:
                target[key] = None
            continue
        if item.widget in ("integer", "number"):
            target[key] = _number(text, item.widget == "integer")
        elif item.widget == "select":
            matches = [v for v in item.enum_values if _choice_key(v) == text]
            target[key] = matches[0] if matches else text
        elif item.widget == "list":
            target[key] = [part.strip() for part in text.split(",") if part.strip()]
        elif item.widget == "json":
            try:
                target[key] = json.loads(text)
            except json.JSONDecodeError as exc:
                target[key] = text
                errors[item.name] = _("This is not valid JSON (line %(line)d, column %(col)d).") % {
                    "line": exc.lineno,
                    "col": exc.colno,
                }
        else:
            target[key] = text
    return {k: v for k, v in config.items() if v != {} or k not in _nested(model)}, errors


def _nested(model: type[BaseModel]) -> set[str]:
    return {f.name.partition(".")[0] for f in config_fields(model, {}) if "." in f.name}


def _message(error: Any) -> str:
    return pydantic_message(error["type"], error.get("ctx", {}), str(error["msg"]))


def config_errors(model: type[BaseModel], config: Mapping[str, Any]) -> dict[str, str]:
    """pydantic's messages for ``config``, keyed by top-level field (``__all__`` for the rest)."""
    try:
        model.model_validate(dict(config))
    except ValidationError as exc:
        names = {f.name for f in config_fields(model, {})}
        errors: dict[str, str] = {}
        for error in exc.errors():
            loc = [str(part) for part in error["loc"]]
            nested = ".".join(loc[:2])
            depth = 2 if nested in names else 1
            key = ".".join(loc[:depth]) if loc else FORM_ERROR
            detail = ".".join(loc[depth:])
            message = f"{detail}: {_message(error)}" if detail else _message(error)
            errors[key] = f"{errors[key]}; {message}" if key in errors else message
        return errors
    return {}


def normalized(model: type[BaseModel], config: Mapping[str, Any]) -> dict[str, Any]:
    """The validated config as JSON (defaults filled in), or ``config`` unchanged if invalid."""
    try:
        return model.model_validate(dict(config)).model_dump(mode="json")
    except ValidationError:
        return dict(config)
