"""The sandboxed template helper: fallbacks, escaping, and refusing unsafe templates."""

from __future__ import annotations

import pytest

from runtime.messaging.render import TemplateProblem, check_template, render_template

VALUES = {
    "first_name": "Ann",
    "last_name": "",
    "attributes": {"city": "Malmö", "score": 7},
    "trigger": {"properties": {"product": "Guide"}},
}


def test_values_and_fallbacks() -> None:
    text = "Hi {{ first_name }} {{ last_name | default('', true) }}from {{ attributes.city }}"
    assert render_template(text, VALUES) == "Hi Ann from Malmö"
    assert render_template("Hi {{ nickname | default('there') }}", VALUES) == "Hi there"
    assert render_template("[{{ attributes.country.name }}]", VALUES) == "[]"
    assert render_template("{{ missing }}", {}) == ""
    loop = "{% for p in [1, 2] %}{{ p * attributes.score }} {% endfor %}"
    assert render_template(loop, VALUES) == "7 14 "


def test_html_escapes_values_but_keeps_the_template_markup() -> None:
    values = {"first_name": "<script>alert(1)</script>"}
    assert render_template("<p>{{ first_name }}</p>", values, html=True) == (
        "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
    )
    assert render_template("{{ first_name }}", values) == "<script>alert(1)</script>"


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{% for i in range(10**9) %}{% endfor %}",
    ],
)
def test_the_sandbox_refuses_escapes_and_huge_loops(template: str) -> None:
    with pytest.raises(TemplateProblem):
        render_template(template, VALUES)


def test_syntax_errors_say_where() -> None:
    assert check_template("Hi {{ first_name }") is not None
    assert "line 2" in (check_template("ok\n{% if %}") or "")
    assert check_template("Hi {{ first_name }}") is None


def test_internals_are_invisible_to_templates() -> None:
    text = "[{{ first_name.__class__ }}|{{ first_name.__init__.__globals__ }}]"
    assert render_template(text, VALUES) == "[|]"
