"""The one way Touchflow writes CSV: every cell guarded against formula injection.

Spreadsheet apps run a cell that starts like a formula (``=``, ``+``, ``-``,
``@``, or a tab or carriage return before one), and a contact's name or a row
of an uploaded file is text someone else typed. A leading apostrophe makes
such a cell text again, which every spreadsheet app shows without the quote.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO, Any

__all__ = ["CsvWriter", "safe_cell"]

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """``value`` as CSV cell text that a spreadsheet app shows and never evaluates."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


class CsvWriter:
    """``csv.writer`` with every cell passed through ``safe_cell``."""

    def __init__(self, stream: IO[str], **options: Any) -> None:
        self._writer = csv.writer(stream, **options)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([safe_cell(cell) for cell in row])
