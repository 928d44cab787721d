"""Real HTTP servers on loopback ports the kernel picks, and the recording servers tests use.

``serve(handler)`` runs any ``BaseHTTPRequestHandler`` class in a thread for a block.
On it sit three recorders, one per kind of test:

- ``receiver()`` -> ``Receiver``: a webhook target; every POST as a ``Received``
  (path, headers, body), answered with ``status``.
- ``hook_receiver()`` -> ``HookReceiver``: a webhook target or provider for the
  runtime's delivery tests; answers ``statuses`` in order, then 200; ``keys()``
  lists the Idempotency-Key of each request.
- ``http_server(Script)``: an SMS/HTTP provider that can fail, hang, refuse, then recover.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


class LoopbackServer(ThreadingHTTPServer):
    # The outbox posts up to 16 at once; the default backlog of 5 would reset some.
    request_queue_size = 128
    daemon_threads = True

    @property
    def url(self) -> str:
        """The base address, ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[LoopbackServer]:
    """Serve ``handler`` on 127.0.0.1 (a port the kernel picks) in a thread for the block."""
    server = LoopbackServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class QuietHandler(BaseHTTPRequestHandler):
    """A handler that keeps the test output clean."""

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


@dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Receiver:
    """Requests received so far; ``url`` is the server's base address."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[Received]:
        with self.lock:
            return list(self.requests)


@contextmanager
def receiver() -> Iterator[Receiver]:
    """A webhook target for the block: records every POST, answers ``status`` with "ok"."""
    record = Receiver()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = self.body()
            with record.lock:
                record.requests.append(Received(self.path, dict(self.headers.items()), body))
            self.send_response(record.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    with serve(Handler) as server:
        record.url = server.url
        yield record


@dataclass
class HookReceiver:
    """A webhook receiver or provider that records each POST as ``(headers, body)``.

    ``statuses`` are answered in order, then 200 for ever.
    """

    port: int = 0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def keys(self) -> list[str]:
        """The Idempotency-Key of every request received, in order."""
        with self.lock:
            return [headers.get("Idempotency-Key", "") for headers, _ in self.requests]


@contextmanager
def hook_receiver() -> Iterator[HookReceiver]:
    state = HookReceiver()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = self.body()
            with state.lock:
                state.requests.append((dict(self.headers.items()), body))
                status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    with serve(Handler) as server:
        state.port = server.server_address[1]
        yield state


@dataclass
class Script:
    """What the server does with each request in turn: "fail", "hang", "refuse", then "ok"."""

    plan: list[str] = field(default_factory=list)
    hang_seconds: float = 1.5
    accepted: list[Received] = field(default_factory=list)
    seen: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_action(self) -> str:
        with self.lock:
            self.seen += 1
            return self.plan.pop(0) if self.plan else "ok"


def _scripted(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = self.body()
            action = script.next_action()
            if action == "hang":
                time.sleep(script.hang_seconds)  # the client has given up by now
                return
            if action == "fail":
                self._answer(500, {"error": "internal"})
                return
            if action == "refuse":
                self._answer(400, {"error": "bad number"})
                return
            with script.lock:
                script.accepted.append(Received(self.path, dict(self.headers), body))
                number = len(script.accepted)
            self._answer(200, {"id": f"p{number}", "sid": f"SM{number}", "status": "created"})

        def _answer(self, status: int, data: dict[str, Any]) -> None:
            content = json.dumps(data).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)
            except OSError:
                pass

    return Handler


@contextmanager
def http_server(script: Script) -> Iterator[str]:
    """Serve ``script`` on a loopback port; yields the base URL."""
    with serve(_scripted(script)) as server:
        yield server.url
