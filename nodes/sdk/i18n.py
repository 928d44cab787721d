"""The SDK's translation marker and hook.

``N_("Wait until")`` marks a string a person reads: node code marks its names,
descriptions, field titles and validation messages with ``N_`` (which returns
its argument unchanged) and the catalogue tool extracts every ``N_(...)`` call,
so mark literal strings only. The app shows them in the reader's language.

``translate`` is for the one place node code hands a finished sentence to a
person while the app is serving them: a config validation message. It uses the
translator the app installed with ``set_translator`` (the request's language),
and returns the message unchanged when none is installed (tests, the worker).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["N_", "set_translator", "translate"]

_translator: Callable[[str], str] | None = None


def N_(message: str) -> str:
    """Mark ``message`` for the translation catalogue; returns it unchanged."""
    return message


def set_translator(translator: Callable[[str], str] | None) -> None:
    """Install the app's translator (called once by the app at import time)."""
    global _translator
    _translator = translator


def translate(message: str) -> str:
    """``message`` in the current reader's language, if the app installed a translator."""
    return message if _translator is None else _translator(message)
