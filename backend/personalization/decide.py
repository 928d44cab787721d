"""Choosing the content of each requested slot: pure functions, no I/O.

Precedence per slot: the newest live assignment (a flow chose it for this
visitor or its verified contact; for a mere claim only blocks marked safe to
show on a claim), then the first default rule (lowest priority number)
whose page pattern, UTM source and audience match, else nothing (the page
keeps its own default content).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from urllib.parse import parse_qs, urlsplit

from backend.models import Audience

__all__ = [
    "UTM_KEYS",
    "Chosen",
    "PageContext",
    "RuleEntry",
    "choose",
    "page_context",
    "rule_matches",
    "url_utm",
]

# Plain strings: an enum member's .value is a descriptor call, and this runs per rule.
_ANONYMOUS = Audience.anonymous.value
_KNOWN = Audience.known.value
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


@dataclass(frozen=True)
class PageContext:
    """Where the visitor is: the page's URL and path, and the campaign that brought them."""

    url: str = ""
    path: str = "/"
    utm_source: str = ""


def url_utm(url: str) -> dict[str, str]:
    """The UTM parameters in ``url``'s query string."""
    query = parse_qs(urlsplit(url).query)
    return {key: query[key][0][:200] for key in UTM_KEYS if query.get(key)}


@lru_cache(maxsize=4096)
def _read_url(url: str) -> tuple[str, str]:
    """The path and UTM source of ``url`` (memoised: a site's visitors share few URLs)."""
    return urlsplit(url).path or "/", url_utm(url).get("utm_source", "")


def page_context(url: str, utm: Mapping[str, str] | None = None) -> PageContext:
    """Read the page URL; ``utm`` (remembered by the snippet) fills in UTM the URL lacks."""
    path, source = _read_url(url)
    source = source or (utm or {}).get("utm_source", "")
    return PageContext(url=url, path=path, utm_source=source.strip().lower())


@dataclass(frozen=True)
class RuleEntry:
    """A default rule as the cache holds it, with its variant's (already clean) HTML."""

    id: int
    slot: str
    priority: int
    url_pattern: str
    utm_source: str
    audience: str
    variant_id: int
    variant_key: str
    html: str
    show_on_claim: bool = False  # its block carries no personal data


@dataclass(frozen=True)
class Chosen:
    """What goes into one slot, and why (``source`` is "assignment" or "rule")."""

    html: str
    variant: str
    source: str


def _url_matches(pattern: str, page: PageContext) -> bool:
    if not pattern:
        return True
    # A pattern with a scheme names whole URLs; otherwise it is a path like /pricing*.
    target = page.url.split("#", 1)[0] if "://" in pattern else page.path
    return fnmatchcase(target, pattern)


def rule_matches(rule: RuleEntry, page: PageContext, known: bool, claimed: bool = False) -> bool:
    """``known``: verified; ``claimed``: the browser says who it is, unproven."""
    if rule.audience == _ANONYMOUS and known:
        return False
    if rule.audience == _KNOWN and not (known or (claimed and rule.show_on_claim)):
        return False
    if rule.utm_source and rule.utm_source != page.utm_source:
        return False
    return _url_matches(rule.url_pattern, page)


def choose(
    slots: Iterable[str],
    page: PageContext,
    *,
    known: bool,
    assigned: Mapping[str, Chosen],
    rules: Mapping[str, Sequence[RuleEntry]],
    claimed: bool = False,
) -> dict[str, Chosen]:
    """Content for each slot that has some; ``rules`` per slot are already in priority order."""
    chosen: dict[str, Chosen] = {}
    for slot in slots:
        if slot in assigned:
            chosen[slot] = assigned[slot]
            continue
        for rule in rules.get(slot, ()):
            if rule_matches(rule, page, known, claimed):
                chosen[slot] = Chosen(html=rule.html, variant=rule.variant_key, source="rule")
                break
    return chosen
