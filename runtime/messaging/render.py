"""Safe message templates: sandboxed Jinja over contact attributes and flow data.

For nodes that render subjects and bodies (and the editor's live preview):
``render_template("Hi {{ first_name | default('there') }}", values)``.

- The sandbox refuses attribute tricks (``__class__``, ``mro``...) and caps ``range``;
  templates are compiled once per source text.
- A missing value renders as nothing rather than failing the step (StrictUndefined
  is off), and chains: ``{{ attributes.city.name }}`` is empty when ``city`` is
  missing; ``default`` gives the fallback.
- With ``html=True`` values are HTML-escaped (the template's own markup is kept).
- A template that cannot compile or render raises ``TemplateProblem`` with a
  message a marketer can act on (``check_template`` returns it for the editor).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateError, TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

__all__ = ["TemplateProblem", "check_template", "render_template"]

MAX_OUTPUT = 200_000


class TemplateProblem(ValueError):
    """The template has an error; the message says where and what."""


def _environment(html: bool) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        autoescape=html,
        undefined=ChainableUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


_ENVIRONMENTS = {False: _environment(False), True: _environment(True)}


@lru_cache(maxsize=1024)
def _compiled(source: str, html: bool) -> Template:
    try:
        return _ENVIRONMENTS[html].from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"line {exc.lineno}: {exc.message}") from exc


def check_template(source: str) -> str | None:
    """``None`` when ``source`` compiles, else what is wrong with it."""
    try:
        _compiled(source, False)
    except TemplateProblem as exc:
        return str(exc)
    return None


def render_template(source: str, values: Mapping[str, Any], *, html: bool = False) -> str:
    """Fill ``source`` with ``values`` in the sandbox (see the module docstring)."""
    template = _compiled(source, html)
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
