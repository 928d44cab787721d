"""Paging for lists: 1-based page numbers, clamped page sizes."""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_PAGE_SIZE = 200
# Far beyond any real list, and small enough that no offset overflows the database.
MAX_PAGE_NUMBER = 2**40


@dataclass(frozen=True)
class Page:
    number: int = 1
    size: int = 25

    @classmethod
    def of(cls, number: int = 1, size: int = 25) -> Page:
        return cls(number=max(1, number), size=min(max(1, size), MAX_PAGE_SIZE))

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    def count(self, total: int) -> int:
        """How many pages ``total`` rows fill (at least one, so "page 1 of 1" reads right)."""
        return max(1, math.ceil(total / self.size))
