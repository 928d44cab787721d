"""The egress guard against real loopback listeners: nothing arrives unless EGRESS_ALLOW names it.

Each listener counts every request it receives. Without an allowance, the
client is refused before a byte is sent: for literal loopback addresses, an
IPv4 address wrapped in IPv6, a name that resolves to loopback (``localhost``)
and a redirect from an allowed host to a forbidden one. With ``EGRESS_ALLOW``
set (the operator's setting, read through ``Settings``) the same requests arrive.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import OutboxMessage, Step
from backend.settings import Settings
from nodes.builtin import NODE_TYPES
from nodes.sdk import EgressPolicy, NodeRegistry
from runtime.clock import FakeClock
from runtime.delivery.webhook import WebhookDeliverer
from runtime.egress import EgressClient, EgressRefused
from runtime.engine import Runtime
from runtime.services import build_services
from tests.runtime.conftest import add_contacts, publish
from tests.runtime.nodes import graph


@dataclass
class Listener:
    """A loopback HTTP server that counts what reaches it; ``redirect_to`` makes it redirect."""

    host: str
    port: int = 0
    hits: list[str] = field(default_factory=list)
    redirect_to: str | None = None
    body: bytes = b"internal secret answer"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, host: str | None = None, path: str = "/hook") -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def received(self) -> list[str]:
        with self.lock:
            return list(self.hits)


@contextmanager
def listener(host: str = "127.0.0.1", **options: Any) -> Iterator[Listener]:
    state = Listener(host=host, **options)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.lock:
                state.hits.append(f"{self.command} {self.path}")
            if state.redirect_to:
                self.send_response(307)
                self.send_header("Location", state.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _client(allow: str = "") -> EgressClient:
    settings = Settings(_env_file=None, egress_allow=allow)  # type: ignore[call-arg]
    return EgressClient(EgressPolicy.parse(settings.egress_allow), timeout=5)


@pytest.fixture
def target() -> Iterator[Listener]:
    with listener("127.0.0.1") as server:
        yield server


async def test_loopback_is_refused_by_address_and_by_a_name_that_resolves_to_it(
    target: Listener,
) -> None:
    urls = [
        target.url(),
        target.url("localhost"),
        target.url("[::ffff:127.0.0.1]"),
        target.url("[::ffff:7f00:1]"),
        target.url("0.0.0.0"),  # noqa: S104 - a URL, nothing binds it
    ]
    async with _client() as client:
        for url in urls:
            with pytest.raises(EgressRefused, match="does not call"):
                await client.post(url, json={"x": 1})
    assert target.received() == []


async def test_egress_allow_opens_the_named_addresses(target: Listener) -> None:
    async with _client("127.0.0.0/8, ::1") as client:
        answer = await client.post(target.url(), json={"x": 1})
        by_name = await client.post(target.url("localhost"), json={"x": 2})
    assert (answer.status_code, by_name.status_code) == (200, 200)
    assert target.received() == ["POST /hook", "POST /hook"]
    async with _client("localhost") as client:
        assert (await client.get(target.url("localhost"))).status_code == 200
        with pytest.raises(EgressRefused):
            await client.get(target.url())  # the name is allowed, not its address
    assert len(target.received()) == 3


async def test_a_redirect_to_a_forbidden_address_is_not_followed(target: Listener) -> None:
    # The first hop is an allowed host; it redirects to loopback, by address and by name.
    for forbidden in (target.url(), target.url("localhost")):
        with listener("127.0.0.2", redirect_to=forbidden) as hop:
            async with _client("127.0.0.2") as client:
                with pytest.raises(EgressRefused, match=r"127\.0\.0\.1"):
                    await client.post(hop.url(), json={})
            assert hop.received() == ["POST /hook"]
    assert target.received() == []
    with listener("127.0.0.2", redirect_to=target.url()) as hop:
        async with _client("127.0.0.2,127.0.0.1") as client:
            assert (await client.post(hop.url(), json={})).status_code == 200
    assert target.received() == ["POST /hook"]


async def test_answers_are_cut_at_the_size_limit(target: Listener) -> None:
    target.body = b"x" * 10_000
    async with EgressClient(EgressPolicy.parse("127.0.0.1"), max_bytes=1000) as client:
        answer = await client.get(target.url())
    assert len(answer.content) == 1000
    assert answer.extensions["truncated"] is True


async def test_a_slow_answer_ends_at_the_time_limit() -> None:
    import socket

    with socket.socket() as silent:  # accepts connections and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        async with EgressClient(EgressPolicy.parse("127.0.0.1"), timeout=0.5) as client:
            with pytest.raises(httpx.TimeoutException):
                await client.get(f"http://127.0.0.1:{port}/")


def test_the_policy_names_each_kind_of_internal_address() -> None:
    policy = EgressPolicy()
    assert policy.refusal("https://hooks.example.com/x") is None
    assert "loopback" in (policy.refusal("http://[::1]/") or "")
    assert "link-local" in (policy.refusal("http://169.254.169.254/latest/meta-data") or "")
    assert "private" in (policy.refusal("http://10.0.0.5/") or "")
    assert "private" in (policy.refusal("http://[fd00:ec2::254]/") or "")
    assert "reserved" in (policy.refusal("http://100.100.100.200/") or "")
    assert "loopback" in (policy.refusal("http://[64:ff9b::7f00:1]/") or "")
    assert "not an http" in (policy.refusal("file:///etc/passwd") or "")
    allowed = EgressPolicy.parse("10.0.0.0/8,.corp.example")
    assert allowed.refusal("http://10.1.2.3/") is None
    assert allowed.refusal("http://crm.corp.example/") is None


@pytest.fixture
def registry() -> NodeRegistry:
    registry = NodeRegistry()
    for node_type in NODE_TYPES:
        registry.add(node_type)
    return registry


def _runtime(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FakeClock,
    registry: NodeRegistry,
) -> Runtime:
    """A runtime wired as ``build_runtime`` wires it: the setting feeds node check and channel."""
    egress = EgressPolicy.parse(settings.egress_allow)
    return Runtime(
        sessions=sessions,
        registry=registry,
        settings=settings,
        clock=clock,
        deliverers={"webhook": WebhookDeliverer(EgressClient(egress, timeout=5), clock)},
        services=build_services(settings.base_url, "secret", egress_allow=settings.egress_allow),
    )


def _webhook_flow(url: str) -> dict[str, Any]:
    return graph(
        [
            ("start", "trigger.event", {"event_type": "signed_up"}),
            ("hook", "action.webhook", {"url": url, "secret": "s" * 20}),
        ],
        [("start", "next", "hook")],
    )


async def test_a_published_webhook_to_loopback_fails_on_the_step_and_the_outbox_row(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FakeClock,
    registry: NodeRegistry,
    target: Listener,
) -> None:
    """The finding: a marketer's webhook to 127.0.0.1 reached the internal service."""
    only_the_hop = settings.model_copy(update={"egress_allow": "127.0.0.2"})
    rt = _runtime(sessions, only_the_hop, clock, registry)
    [contact] = await add_contacts(rt, 1)
    await publish(rt, _webhook_flow(target.url()), name="By address")
    with listener("127.0.0.2", redirect_to=target.url("localhost")) as hop:
        await publish(rt, _webhook_flow(hop.url()), name="Through a redirect")
        await rt.ingest("signed_up", contact_id=contact)
        for _ in range(3):
            await rt.drain()
            clock.advance(minutes=30)
        assert hop.received() == ["POST /hook"]
    assert target.received() == []
    async with sessions() as db:
        errors = (await db.scalars(select(Step.error).where(Step.node_id == "hook"))).all()
        [row] = (await db.scalars(select(OutboxMessage))).all()
    # The flow aimed at 127.0.0.1 fails on its step; the redirected one on its outbox row.
    failed = [e for e in errors if e is not None]
    assert failed and all("does not call 127.0.0.1" in e for e in failed)
    assert errors.count(None) == 1
    assert row.status == "dead"
    assert "does not call localhost (127.0.0.1)" in (row.last_error or "")
    assert "internal secret answer" not in (row.last_error or "")


async def test_with_egress_allow_the_same_webhook_arrives(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: FakeClock,
    registry: NodeRegistry,
    target: Listener,
) -> None:
    allowed = settings.model_copy(update={"egress_allow": "127.0.0.1"})
    rt = _runtime(sessions, allowed, clock, registry)
    [contact] = await add_contacts(rt, 1)
    await publish(rt, _webhook_flow(target.url()))
    await rt.ingest("signed_up", contact_id=contact)
    await rt.drain()
    assert target.received() == ["POST /hook"]
