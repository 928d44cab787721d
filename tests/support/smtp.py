"""A real SMTP server (aiosmtpd) on a loopback port the kernel picks, and what it received."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message as EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Mailbox:
    """What the SMTP server received, in order."""

    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def subjects(self) -> list[str]:
        with self.lock:
            return [str(m["Subject"]) for m in self.messages]

    def message_ids(self) -> list[str]:
        with self.lock:
            return [str(m["Message-ID"]) for m in self.messages]


class LoopbackSMTP(Controller):  # type: ignore[misc]
    """aiosmtpd's threaded server on 127.0.0.1; ``port=0`` (the default) lets the kernel pick.

    ``port`` holds the real port once started, so ``stop()`` then ``start()`` reopens
    the same one (a server that went away and came back).
    """

    def __init__(self, handler: Any, port: int = 0, **kwargs: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=port, **kwargs)

    def _create_server(self) -> Awaitable[Any]:
        async def create() -> Any:
            server = await self.loop.create_server(
                self._factory_invoker, host=self.hostname, port=self.port, ssl=self.ssl_context
            )
            self.port = server.sockets[0].getsockname()[1]
            return server

        return create()


@contextmanager
def smtp_server(handler: Any | None = None, **options: Any) -> Iterator[tuple[Any, int]]:
    """Run an SMTP server for the block; yields ``(handler, port)`` (a new Mailbox by default).

    ``options`` go to aiosmtpd's server (``enable_SMTPUTF8``, ``decode_data``...)."""
    handler = Mailbox() if handler is None else handler
    controller = LoopbackSMTP(handler, **options)
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()
