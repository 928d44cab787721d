"""The shared test helpers: the session's web app comes back as new; servers pick their ports."""

from __future__ import annotations

import os
import smtplib
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from litestar import Litestar

from backend.ratelimit import Limit
from nodes.sdk.testing import FixedClock
from runtime.clock import FakeClock
from tests.backend.web.conftest import app, clock
from tests.support import plugins, schedule
from tests.support.clock import MovableClock
from tests.support.http import hook_receiver, receiver
from tests.support.smtp import LoopbackSMTP, Mailbox, smtp_server
from tests.support.web import SharedApp

__all__ = ["app", "clock"]  # the web tests' fixtures, used here


async def test_the_shared_app_forgets_what_the_last_test_did(_shared_app: SharedApp) -> None:
    first_clock, second_clock = MovableClock(), MovableClock()
    app = _shared_app.fresh(first_clock)
    app.state.import_dir = "/tmp/elsewhere"
    app.state.settings.sms_provider = "46elks"
    await app.state.rate_limiter.hit("visitor", Limit(count=1, seconds=60))
    assert await app.state.rate_limiter.hit("visitor", Limit(count=1, seconds=60)) is not None

    again = _shared_app.fresh(second_clock)
    assert again is app
    assert "import_dir" not in again.state
    assert again.state.settings.sms_provider is None
    assert again.state.clock is second_clock
    assert await again.state.rate_limiter.hit("visitor", Limit(count=1, seconds=60)) is None


def test_each_test_gets_the_shared_app_with_its_own_clock(
    app: Litestar, _shared_app: SharedApp, clock: MovableClock
) -> None:
    assert app is _shared_app.app and app.state.clock is clock


def test_the_clocks_are_one_clock() -> None:
    fake = FakeClock()
    assert isinstance(fake, FixedClock) and isinstance(MovableClock(), FakeClock)
    assert fake.now() == FixedClock().now()
    fake.set(datetime(2031, 5, 1, tzinfo=UTC))
    assert fake.advance(hours=1) == datetime(2031, 5, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="aware"):
        fake.set(datetime(2031, 5, 1))


def test_smtp_servers_get_their_own_ports_and_a_restart_keeps_it() -> None:
    with smtp_server() as (first, one), smtp_server() as (_, two):
        assert one != two
        with smtplib.SMTP("127.0.0.1", one) as client:
            client.sendmail("a@example.test", ["b@example.test"], "Subject: Hej\r\n\r\nx")
        assert first.subjects() == ["Hej"]
    server = LoopbackSMTP(Mailbox())
    server.start()
    port = server.port
    server.stop()
    server = LoopbackSMTP(server.handler, port=port)
    server.start()
    try:
        assert server.port == port
    finally:
        server.stop()


def test_the_receivers_record_what_they_are_sent() -> None:
    with receiver() as plain, hook_receiver() as hooks:
        hooks.statuses = [503]
        for url in (plain.url + "/x", hooks.url, hooks.url):
            request = urllib.request.Request(  # noqa: S310 - a loopback http URL
                url, data=b"{}", headers={"Idempotency-Key": "k"}, method="POST"
            )
            try:
                urllib.request.urlopen(request, timeout=5).close()  # noqa: S310 - loopback
            except urllib.error.HTTPError as exc:
                assert exc.code == 503
        assert [r.path for r in plain.received()] == ["/x"]
        assert hooks.keys() == ["k", "k"]


def test_the_waiting_tests_are_dealt_as_one_unit_and_the_rest_one_by_one() -> None:
    root = Path(__file__).resolve().parents[1]
    # A renamed file would silently drop out of the unit.
    assert all((root / path).is_file() for path in schedule.WAITING)
    scheduling = schedule.Scheduling.__new__(schedule.Scheduling)  # _split_scope reads no state
    waiting = [f"{path}::test_x[sqlite]" for path in schedule.WAITING]
    assert {scheduling._split_scope(nodeid) for nodeid in waiting} == {schedule.WAITING_UNIT}
    other = "tests/runtime/test_faults.py::test_duplicate_events_are_acted_on_once[sqlite]"
    assert scheduling._split_scope(other) == other


def test_a_shared_test_is_dealt_with_all_its_databases_to_one_worker() -> None:
    root = Path(__file__).resolve().parents[1]
    scheduling = schedule.Scheduling.__new__(schedule.Scheduling)
    for test in schedule.SHARED:
        path, name = test.split("::")
        source = (root / path).read_text(encoding="utf-8")
        assert f"def {name}" in source, f"{test} names no test: it would silently drop out"
        units = {scheduling._split_scope(f"{test}[{db}]") for db in ("sqlite", "postgresql")}
        assert units == {test}
    # A test whose name merely starts the same way is its own unit.
    longer = f"{schedule.SHARED[0]}_too[sqlite]"
    assert scheduling._split_scope(longer) == longer


def test_auto_starts_a_worker_per_core_and_one_more(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    assert schedule.auto_workers() == len(os.sched_getaffinity(0)) + 1
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "5")
    assert schedule.auto_workers() == 5


def test_remembered_entry_points_see_a_package_installed_since(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look-up answers from memory only while sys.path and its folders are unchanged:
    a package installed into a folder already on the path is found, and one taken off
    the path is gone."""
    look_up = plugins.remembering()
    group = "touchflow.test-remembered"
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    assert list(look_up(group=group)) == []
    assert look_up(group=group) is look_up(group=group)  # from memory

    # Installed the way pip does, into a folder that is on the path already.
    info = site / "touchflow_first-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: touchflow_first\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\nfirst = first:X\n")
    assert [ep.name for ep in look_up(group=group)] == ["first"]

    other = tmp_path / "other"
    plugins.install(other, monkeypatch, "touchflow_second", {group: {"second": "second:X"}})
    assert sorted(ep.name for ep in look_up(group=group)) == ["first", "second"]
    monkeypatch.undo()
    assert list(look_up(group=group)) == []
