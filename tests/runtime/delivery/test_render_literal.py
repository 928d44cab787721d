"""Message text without template tags skips the template engine and still renders the same.

``nodes.builtin.common.render`` returns such text as it is, and
``nodes.builtin.actions.text_to_html`` keeps the HTML of recent short bodies;
both are checked here against the template engine and the uncached conversion.
"""

from __future__ import annotations

import pytest

from nodes.builtin.actions import _text_to_html, text_to_html
from nodes.builtin.common import render
from nodes.sdk.templates import render_template

VALUES = {"first_name": "Åsa", "attributes": {}, "trigger": {}, "data": {}}

TEXTS = [
    "Here it is.",
    "",
    "Hej Åsa!\nRäksmörgås på menyn.\n",
    "Trailing newlines\n\n",
    "Ends %} and #} and }} without an opening",
    "<b>Bold & 'quoted'</b> https://example.se/a?b=1&c=2",
    "  spaced  \t out  ",
    "Windows\r\nline ends",
    "A {{ first_name }} field",
    "A {% if first_name %}block{% endif %}",
    "A {# comment #} here",
    "Lone { brace",
    "x" * 5000,
]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize(("escape", "in_url"), [(False, False), (True, False), (False, True)])
def test_render_gives_what_the_template_engine_gives(text: str, escape: bool, in_url: bool) -> None:
    expected = render_template(text, VALUES, html=escape, url=in_url)
    assert render(text, VALUES, escape=escape, in_url=in_url) == expected


@pytest.mark.parametrize("text", TEXTS)
def test_kept_html_bodies_are_the_conversion_of_their_own_text(text: str) -> None:
    assert text_to_html(text) == _text_to_html(text)
    assert text_to_html(text) == _text_to_html(text)  # again, from the cache
