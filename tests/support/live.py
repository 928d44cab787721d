"""The real app served by uvicorn in a thread, on a loopback port the kernel picks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from litestar import Litestar

from tests.support.net import loopback_socket, port_of

STARTUP_SECONDS = 30


@contextmanager
def live_app(
    build: Callable[[str], Litestar], name: str = "touchflow-live-server"
) -> Iterator[tuple[str, Litestar]]:
    """Serve ``build(url)`` for the block; yields ``(url, app)``.

    The socket is bound before the app is built, so the app knows its own base URL
    and no other process can take the port in between.
    """
    sock = loopback_socket()
    url = f"http://127.0.0.1:{port_of(sock)}"
    app = build(url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            pytest.fail(f"the app did not start ({name})")
        time.sleep(0.05)
    try:
        yield url, app
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_SECONDS)
        sock.close()
