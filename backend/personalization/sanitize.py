"""The HTML allow-list for web content: what a block may put into the customer's page.

Content is cleaned when it is saved (and again when a flow delivers it), so
the decision endpoint serves stored HTML as is. nh3 drops scripts, event
handler attributes, ``javascript:`` URLs, styles and frames; ``class`` stays so
blocks can use the host site's CSS.
"""

from __future__ import annotations

import nh3

MAX_HTML_CHARS = 20_000

_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "*": {"class", "title", "lang", "dir"},
}
_CLEANER = nh3.Cleaner(
    attributes=_ATTRIBUTES,
    clean_content_tags={"script", "style"},
    url_schemes={"http", "https", "mailto", "tel"},
    link_rel="noopener noreferrer",
)


def sanitize_html(html: str) -> str:
    """Safe HTML for a slot on someone else's page."""
    return _CLEANER.clean(html).strip()
