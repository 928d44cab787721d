"""Real processes for delivery fault tests: the recording SMTP sink, workers, redis-server.

Each runs as a child process of the test with its output in a log file under
the test's temporary directory, and is stopped (or SIGKILLed) by the test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from backend.demo import demo_graph
from backend.models import Contact, OutboxMessage
from backend.settings import Settings
from nodes.sdk import discover
from runtime import flows
from runtime.engine import Runtime
from tests.runtime.delivery.smtp_sink import read_log
from tests.support.net import free_port
from tests.support.stores import missing_service

ROOT = Path(__file__).resolve().parents[3]


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


@dataclass
class Child:
    """A child process and the file its output goes to."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def _spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> Child:
    out = log.open("ab")
    process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    out.close()
    return Child(process, log)


@dataclass
class Sink:
    """The recording SMTP server (``smtp_sink``) as a process."""

    child: Child
    port: int
    received_log: Path

    def received(self) -> list[dict[str, Any]]:
        return read_log(self.received_log)


def start_sink(tmp: Path, *, delay: float = 0.0, smtputf8: bool = True) -> Sink:
    port = free_port()
    received = tmp / f"sink-{port}.jsonl"
    args = [sys.executable, "-m", "tests.runtime.delivery.smtp_sink"]
    args += ["--port", str(port), "--log", str(received), "--delay", str(delay)]
    if smtputf8:
        args.append("--smtputf8")
    child = _spawn(args, tmp / f"sink-{port}.out", _env({}))
    _wait_for_port(port, child.process, "the SMTP sink")
    return Sink(child, port, received)


def start_redis(tmp: Path, port: int | None = None) -> tuple[Child, int]:
    """A throwaway redis-server of the test's own (never the shared one): no persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing_service("redis-server")
    port = port or free_port()
    args = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    child = _spawn([*args, "no"], tmp / f"redis-{port}.out")
    _wait_for_port(port, child.process, "redis-server")
    return child, port


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "SMS_"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def start_worker(tmp: Path, name: str, settings: dict[str, str]) -> Child:
    """``touchflow worker`` with ``settings`` as its environment (DATABASE_URL, REDIS_URL...)."""
    env = _env({"ENVIRONMENT": "test", "SECRET_KEY": "test-secret", **settings})
    return _spawn([sys.executable, "-m", "backend.cli", "worker"], tmp / f"{name}.out", env)


def worker_env(db_url: str, redis_url: str, queue: str, sink: Sink, **extra: Any) -> dict[str, str]:
    env = {
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "QUEUE_NAME": queue,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(sink.port),
        "MAIL_FROM": "Shop <hi@shop.test>",
        "SWEEP_INTERVAL_SECONDS": "1",
    }
    env.update({key.upper(): str(value) for key, value in extra.items()})
    return env


def demo_runtime(settings: Settings, sessions: Any) -> Runtime:
    """A runtime with the installed node types, to publish and trigger (it delivers nothing)."""
    return Runtime(sessions=sessions, registry=discover(), settings=settings)


async def confirmations(rt: Runtime, emails: list[str], *, flow: bool = True) -> None:
    """The demo flow, published (unless ``flow`` is false: it already is), and one form
    submission per address: one confirmation each."""
    async with rt.sessions() as session, session.begin():
        result = await session.execute(
            Contact.__table__.insert().returning(Contact.__table__.c.id),
            [{"email": email, "first_name": "Anna", "attributes": {}} for email in emails],
        )
        ids = sorted(result.scalars())
        if flow:
            created = await flows.create_flow(session, "Guide", graph=demo_graph())
            await flows.publish(session, created.id, rt.registry)
    gate = asyncio.Semaphore(8)

    async def submit(contact_id: int) -> None:
        async with gate:
            await rt.ingest("form.submitted", contact_id=contact_id, dedupe_key=f"f{contact_id}")

    await asyncio.gather(*(submit(c) for c in ids))


async def unfinished(rt: Runtime) -> int:
    """Outbox messages not yet delivered or given up (pending, deferred, sending)."""
    async with rt.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.status.in_(("pending", "deferred", "sending")))
        )
    return int(count or 0)


async def wait_until(
    check: Callable[[], Any], *, timeout: float, what: str, every: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
