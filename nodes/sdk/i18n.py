"""The SDK's translation marker: ``N_("Wait until")`` marks a string a person reads.

Node code never translates: it marks its names, descriptions, field titles and
validation messages with ``N_`` (which returns its argument unchanged) and the
app translates them when it shows them, in the reader's language. The
catalogue tool extracts every ``N_(...)`` call, so mark literal strings only.
"""

from __future__ import annotations

__all__ = ["N_"]


def N_(message: str) -> str:
    """Mark ``message`` for the translation catalogue; returns it unchanged."""
    return message
