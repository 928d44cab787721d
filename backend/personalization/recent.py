"""Each visitor's decision state, kept in memory for half a minute.

A visitor asks for decisions page after page, and the answer rarely changes in
between, so each web process keeps the last read per visitor for ``ttl``
seconds and a visit costs few queries.

How stale an answer can be:

- a change made in *this* process (the ``web_content`` deliverer writing an
  assignment, stitching linking a visitor to a contact, an erasure, a marketer's
  edit) drops the entries it affects as soon as its transaction commits
  (``changed``/``changed_on_commit``/``everything_changed``);
- with Redis, the same call tells every other process (``feed.py``: an arq
  worker delivering, another web process stitching), which drop them at once;
- only a change that reached no one (Redis down, a lost message) waits for
  ``ttl``; without Redis there is one process, so nothing is elsewhere;
- an assignment's expiry is checked against the request's clock on every read,
  so expired content is never served from memory.

A read that was already under way when a change landed may have seen the old
rows; an epoch counter keeps such a read out of the cache.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from backend.personalization.feed import ChangeFeed
from backend.personalization.visitors import VisitorState

__all__ = [
    "RecentVisitors",
    "changed",
    "changed_on_commit",
    "drop_here",
    "everything_changed",
    "use_feed",
]

# Past this many visitors the cache starts over (memory stays bounded under a flood of ids).
MAX_VISITORS = 50_000

_LIVE: weakref.WeakSet[RecentVisitors] = weakref.WeakSet()
_FEED: list[ChangeFeed] = []  # the process's feed to the others, when Redis is configured


def use_feed(feed: ChangeFeed | None) -> None:
    """Tell other processes of this process's changes through ``feed`` (None: stop)."""
    _FEED.clear()
    if feed is not None:
        _FEED.append(feed)


@dataclass(eq=False)
class RecentVisitors:
    """Visitor id to its last read state, for ``ttl`` seconds (one per ``Personalizer``)."""

    ttl: float = 30.0
    timer: Callable[[], float] = time.monotonic
    # Bumped by every change: a read started before it must not be cached.
    epoch: int = 0
    _states: dict[str, tuple[float, VisitorState]] = field(default_factory=dict)
    _by_contact: dict[int, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _LIVE.add(self)

    def get(self, visitor_id: str) -> VisitorState | None:
        """The state read less than ``ttl`` seconds ago, if any."""
        found = self._states.get(visitor_id)
        if found is None or found[0] <= self.timer():
            return None
        return found[1]

    def put(self, visitor_id: str, state: VisitorState, epoch: int) -> None:
        """Keep ``state`` unless something changed since ``epoch`` (when its read began)."""
        if epoch != self.epoch or self.ttl <= 0:
            return
        if len(self._states) >= MAX_VISITORS:
            self.clear()
        self._states[visitor_id] = (self.timer() + self.ttl, state)
        for contact_id in (state.contact_id, state.claimed_contact_id):
            if contact_id is not None:
                self._by_contact.setdefault(contact_id, set()).add(visitor_id)

    def drop(self, visitor_ids: Iterable[str], contact_ids: Iterable[int]) -> None:
        self.epoch += 1
        for visitor_id in visitor_ids:
            self._states.pop(visitor_id, None)
        for contact_id in contact_ids:
            for visitor_id in self._by_contact.pop(contact_id, ()):
                self._states.pop(visitor_id, None)

    def clear(self) -> None:
        self.epoch += 1
        self._states.clear()
        self._by_contact.clear()


def changed(
    *, visitor_ids: Iterable[str | None] = (), contact_ids: Iterable[int | None] = ()
) -> None:
    """Content or identity of these visitors/contacts changed (and is committed)."""
    visitors = [v for v in visitor_ids if v]
    contacts = [c for c in contact_ids if c is not None]
    drop_here(visitors, contacts, False)
    for feed in _FEED:
        feed.publish(visitors, contacts)


def everything_changed() -> None:
    """Content every visitor may see changed (a marketer's edit): forget all, everywhere."""
    drop_here((), (), True)
    for feed in _FEED:
        feed.publish((), (), everything=True)


def drop_here(visitor_ids: Iterable[str], contact_ids: Iterable[int], everything: bool) -> None:
    """Drop entries from this process's memory only (what the feed applies)."""
    visitors, contacts = list(visitor_ids), list(contact_ids)
    for cache in list(_LIVE):
        if everything:
            cache.clear()
        else:
            cache.drop(visitors, contacts)


def changed_on_commit(
    session: AsyncSession,
    *,
    visitor_ids: Iterable[str | None] = (),
    contact_ids: Iterable[int | None] = (),
) -> None:
    """``changed`` once ``session``'s transaction commits (a rollback changes nothing)."""
    visitors, contacts = list(visitor_ids), list(contact_ids)

    def after_commit(_session: Any) -> None:
        changed(visitor_ids=visitors, contact_ids=contacts)

    event.listen(session.sync_session, "after_commit", after_commit, once=True)
