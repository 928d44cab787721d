"""A real HTTP server on loopback for provider tests: it can fail, hang, then recover."""

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


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Script:
    """What the server does with each request in turn: "fail", "hang", then "ok" forever."""

    plan: list[str] = field(default_factory=list)
    hang_seconds: float = 1.5
    accepted: list[Received] = field(default_factory=list)
    seen: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_action(self) -> str:
        with self.lock:
            self.seen += 1
            return self.plan.pop(0) if self.plan else "ok"


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
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
    """Serve ``script`` on a free loopback port; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
