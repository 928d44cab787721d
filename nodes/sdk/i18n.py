"""The SDK's translation marker and hook.

``N_("Wait until")`` marks a string a person reads: node code marks its names,
descriptions, field titles and validation messages with ``N_`` (which returns
its argument unchanged) and the catalogue tool extracts every ``N_(...)`` call,
so mark literal strings only. The app shows them in the reader's language.

``translate`` is for code that hands a finished sentence to a person: a
config validation message (in the reader's language) or an email footer (in
the contact's, ``locale="sv"``). It uses the one translator the app installed
with ``set_translator`` and returns the message unchanged when none is
installed (tests of the runtime or the nodes alone).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["N_", "Translator", "set_translator", "translate"]

# (message, locale or None for the current reader's language) -> the translated message.
Translator = Callable[[str, str | None], str]
_translator: Translator | None = None


def N_(message: str) -> str:
    """Mark ``message`` for the translation catalogue; returns it unchanged."""
    return message


def set_translator(translator: Translator | None) -> None:
    """Install the app's translator (called once by the app at import time)."""
    global _translator
    _translator = translator


def translate(message: str, locale: str | None = None) -> str:
    """``message`` in ``locale`` (default: the current reader's language), if the app
    installed a translator."""
    return message if _translator is None else _translator(message, locale)
