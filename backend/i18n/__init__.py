"""Translations: every string people read goes through ``_()`` (gettext via Babel catalogs).

English is the source language and the default. A translation is a compiled
catalog at ``backend/i18n/<locale>/LC_MESSAGES/messages.mo`` made from the
template ``messages.pot`` (``make messages`` re-extracts it from the sources).
The active translation is per request (a context variable), so concurrent
requests in different languages never see each other's strings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cached_property
from gettext import NullTranslations
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.support import Translations

from nodes.sdk.i18n import set_translator

CATALOG_DIR = Path(__file__).resolve().parent
DOMAIN = "messages"
DEFAULT_LOCALE = "en"

_NULL = NullTranslations()
_active: ContextVar[NullTranslations] = ContextVar("touchflow_translations", default=_NULL)
# The language and time zone that dates and numbers are formatted for (backend.i18n.formats).
_locale: ContextVar[str] = ContextVar("touchflow_locale", default=DEFAULT_LOCALE)
_time_zone: ContextVar[str] = ContextVar("touchflow_time_zone", default="UTC")


class Catalogs:
    """The compiled catalogs found in one directory, loaded once per locale."""

    def __init__(self, directory: Path = CATALOG_DIR) -> None:
        self.directory = directory
        self._loaded: dict[str, NullTranslations] = {}

    @cached_property
    def locales(self) -> list[str]:
        """English plus every locale that has a compiled catalog."""
        found = sorted(
            path.parent.parent.name
            for path in self.directory.glob(f"*/LC_MESSAGES/{DOMAIN}.mo")
            if path.parent.parent.name != DEFAULT_LOCALE
        )
        return [DEFAULT_LOCALE, *found]

    def get(self, locale: str) -> NullTranslations:
        if locale == DEFAULT_LOCALE or locale not in self.locales:
            return _NULL
        if locale not in self._loaded:
            self._loaded[locale] = Translations.load(str(self.directory), [locale], DOMAIN)
        return self._loaded[locale]

    def negotiate(self, accept_language: str | None) -> str:
        """The best available locale for an ``Accept-Language`` header, English if none fits."""
        if not accept_language:
            return DEFAULT_LOCALE
        preferred = [
            part.split(";")[0].strip().replace("-", "_")
            for part in accept_language.split(",")
            if part.strip()
        ]
        try:
            best = Locale.negotiate(preferred, self.locales, sep="_")
        except (UnknownLocaleError, ValueError):
            return DEFAULT_LOCALE
        return str(best) if best else DEFAULT_LOCALE


catalogs = Catalogs()


def activate(translations: NullTranslations) -> None:
    """Use ``translations`` for the rest of the current request (or task)."""
    _active.set(translations)


def activate_locale(locale: str, available: Catalogs | None = None) -> str:
    """Use ``locale``'s strings and formats for the rest of the request; returns the one used."""
    source = available or catalogs
    chosen = locale if locale in source.locales else DEFAULT_LOCALE
    _active.set(source.get(chosen))
    _locale.set(chosen)
    return chosen


def current_locale() -> str:
    return _locale.get()


def activate_time_zone(name: str) -> None:
    """Show times in ``name`` (an IANA zone) for the rest of the request."""
    _time_zone.set(name)


def current_time_zone() -> str:
    return _time_zone.get()


@contextmanager
def using(translations: NullTranslations) -> Iterator[None]:
    """Use ``translations`` inside the block only."""
    token = _active.set(translations)
    try:
        yield
    finally:
        _active.reset(token)


def gettext(message: str) -> str:
    return _active.get().gettext(message)


def in_locale(message: str, locale: str | None) -> str:
    """``message`` in ``locale`` ("sv", "sv-SE", "sv_SE"...), English when we have no such
    catalogue; for text made outside a request, such as an email's footer."""
    language = (locale or "").replace("-", "_").split("_")[0].lower()
    return catalogs.get(language).gettext(message) if language else message


def _translate(message: str, locale: str | None) -> str:
    return gettext(message) if locale is None else in_locale(message, locale)


# Node code's validation messages (the reader's language) and email footers (the
# contact's) are translated through the SDK's hook: nodes and runtime never import us.
set_translator(_translate)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _active.get().ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark a string for extraction without translating it yet (module-level constants)."""
    return message


_ = gettext

__all__ = [
    "CATALOG_DIR",
    "DEFAULT_LOCALE",
    "N_",
    "Catalogs",
    "_",
    "activate",
    "activate_locale",
    "activate_time_zone",
    "catalogs",
    "current_locale",
    "current_time_zone",
    "gettext",
    "ngettext",
    "using",
]
