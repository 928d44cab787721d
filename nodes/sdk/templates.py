"""The one template language for messages and web content: sandboxed Jinja.

A marketer writes ``Hi {{ first_name | default("there") }}``, or a readable
condition::

    {% if attributes.city == "Göteborg" %}See you at the fair!{% else %}Hello!{% endif %}

- Values come only from what the caller passes (the contact, its attributes,
  the trigger event, journey data); the sandbox refuses attribute tricks
  (``__class__``, ``mro``...) and caps ``range``. Nothing else is evaluated.
- A missing value renders as nothing (``{{ attributes.city.name }}`` is empty
  when ``city`` is missing) and so does ``None``; ``default`` gives the fallback
  for a value that is missing, ``None`` or empty text (a contact without a first
  name gets "there", not an empty greeting).
- With ``html=True`` values are HTML-escaped, with ``url=True`` percent-encoded
  (for links); the template's own text is kept as written.
- The older merge-field form ``{{ first_name | there }}`` (a bare fallback after
  the bar, and names like ``attributes.shoe-size``) is read as
  ``{{ first_name | default("there") }}``, so texts written before keep working.
- Templates compile once per source text; one that cannot compile or render
  raises ``TemplateProblem`` with a message a marketer can act on
  (``check_template`` returns it for the editor).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import quote

from jinja2 import ChainableUndefined, Template, TemplateError, TemplateSyntaxError, Undefined
from jinja2 import meta as jinja_meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

__all__ = [
    "TemplateProblem",
    "check_template",
    "modernise",
    "render_template",
    "template_names",
]

MAX_OUTPUT = 200_000
Mode = Literal["text", "html", "url"]


class TemplateProblem(ValueError):
    """The template has an error; the message says where and what."""


def _missing(value: Any) -> bool:
    return value is None or value == "" or isinstance(value, Undefined)


def _default(value: Any, fallback: Any = "", boolean: bool = False) -> Any:
    """The marketer's fallback: used when the value is missing, None or empty text."""
    if _missing(value) or (boolean and not value):
        return fallback
    return value


def _finalize(mode: Mode) -> Callable[[Any], Any]:
    def finalize(value: Any) -> Any:
        if _missing(value):
            return ""
        if mode == "url":
            return quote(str(value), safe="")
        return value

    return finalize


def _environment(mode: Mode) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        autoescape=mode == "html",
        undefined=ChainableUndefined,
        finalize=_finalize(mode),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["default"] = env.filters["d"] = _default
    return env


_ENVIRONMENTS: dict[Mode, SandboxedEnvironment] = {
    mode: _environment(mode) for mode in ("text", "html", "url")
}
_FILTERS = frozenset(_ENVIRONMENTS["text"].filters)

# The older merge field: a dotted name, then optionally a bar and a bare fallback text.
_LEGACY = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(?:\|\s*([^}]*?))?\s*\}\}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FILTER_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(\(.*\))?")


def _literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _expression(name: str) -> str:
    first, *rest = name.split(".")
    parts = [first]
    for part in rest:
        parts.append(f".{part}" if _IDENTIFIER.fullmatch(part) else f"[{_literal(part)}]")
    return "".join(parts)


def modernise(source: str) -> str:
    """``source`` with older merge fields written as template expressions (see the docstring)."""

    def rewrite(match: re.Match[str]) -> str:
        name, fallback = match.group(1), match.group(2)
        if fallback is not None:
            call = _FILTER_CALL.fullmatch(fallback.strip())
            if call is not None and call.group(1) in _FILTERS:
                return match.group(0)  # already a filter: the template language's own form
        if not _IDENTIFIER.fullmatch(name.split(".")[0]):
            return match.group(0)
        expression = _expression(name)
        if fallback is None:
            return "{{ " + expression + " }}"
        return "{{ " + expression + " | default(" + _literal(fallback.strip()) + ") }}"

    return _LEGACY.sub(rewrite, source)


@lru_cache(maxsize=2048)
def _compiled(source: str, mode: Mode) -> Template:
    try:
        return _ENVIRONMENTS[mode].from_string(modernise(source))
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"line {exc.lineno}: {exc.message}") from exc


def check_template(source: str) -> str | None:
    """``None`` when ``source`` compiles, else what is wrong with it."""
    try:
        _compiled(source, "text")
    except TemplateProblem as exc:
        return str(exc)
    return None


def template_names(source: str) -> set[str]:
    """The top-level names ``source`` reads (``first_name``, ``attributes``...).

    Raises ``TemplateProblem`` when it does not compile.
    """
    env = _ENVIRONMENTS["text"]
    try:
        parsed = env.parse(modernise(source))
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"line {exc.lineno}: {exc.message}") from exc
    return set(jinja_meta.find_undeclared_variables(parsed))


def render_template(
    source: str, values: Mapping[str, Any], *, html: bool = False, url: bool = False
) -> str:
    """Fill ``source`` with ``values`` in the sandbox (see the module docstring)."""
    template = _compiled(source, "url" if url else "html" if html else "text")
    try:
        output = template.render(dict(values))
    except SecurityError as exc:
        raise TemplateProblem(f"not allowed in a message template: {exc}") from exc
    except TemplateError as exc:
        raise TemplateProblem(str(exc)) from exc
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise TemplateProblem(f"the template failed: {exc}") from exc
    if len(output) > MAX_OUTPUT:
        raise TemplateProblem(f"the message is longer than {MAX_OUTPUT} characters")
    return output
