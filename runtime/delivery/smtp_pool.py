"""A small pool of reused aiosmtplib connections (STARTTLS/TLS and login done once per connection).

Opening an SMTP session costs several round trips (greeting, EHLO, STARTTLS,
AUTH); reusing it makes a send one MAIL/RCPT/DATA exchange. A connection that
raised is closed and dropped, so the next send reconnects. A connection idle
for longer than ``idle_check`` answers a NOOP before reuse: servers close idle
sessions, and finding that out before MAIL FROM is safe to retry, whereas
finding it out after DATA would not be.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

import aiosmtplib

__all__ = ["SmtpPool"]


class SmtpPool:
    """Up to ``size`` concurrent SMTP connections, created on demand and kept open."""

    def __init__(
        self, factory: Callable[[], aiosmtplib.SMTP], size: int = 4, idle_check: float = 5.0
    ) -> None:
        self._factory = factory
        self._slots = asyncio.Semaphore(size)
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self._idle_check = idle_check
        self.connections_opened = 0

    async def _open(self) -> aiosmtplib.SMTP:
        client = self._factory()
        await client.connect()
        self.connections_opened += 1
        return client

    async def _reusable(self) -> aiosmtplib.SMTP | None:
        while self._idle:
            client, since = self._idle.pop()
            if not client.is_connected:
                continue
            if time.monotonic() - since < self._idle_check:
                return client
            try:
                await client.noop()
            except (aiosmtplib.SMTPException, OSError):
                await _close(client)
                continue
            return client
        return None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[aiosmtplib.SMTP]:
        """A ready connection for one message; returned to the pool unless the send raised."""
        async with self._slots:
            client = await self._reusable() or await self._open()
            try:
                yield client
            except BaseException:
                await _close(client)
                raise
            self._idle.append((client, time.monotonic()))

    async def aclose(self) -> None:
        """Say QUIT on every idle connection."""
        idle, self._idle = self._idle, []
        for client, _ in idle:
            await _close(client)


async def _close(client: aiosmtplib.SMTP) -> None:
    if client.is_connected:
        with suppress(aiosmtplib.SMTPException, OSError):
            await client.quit()
    client.close()
