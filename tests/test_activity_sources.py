"""Activity sources (observe/sources.py): apps behind the real jupyter-server-proxy count as a
person's activity for the app action, an excluded one does not; the interface's rules (latest wins,
a failing source is skipped, entry points of other packages) on sources of the test's own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest
import tornado.netutil
import tornado.web
import tornado.websocket
from helpers import api, start_extension, wait_for
from tornado.httpserver import HTTPServer

from jupyter_autoshutdown.core.records import Snapshot
from jupyter_autoshutdown.observe.sources import (
    ActivitySources,
    LoginSessions,
    ServerActivityHook,
    SourceActivity,
    load_sources,
    tty_name,
)

#: The idle timeout T of the integration tests, in seconds.
T = 4.0
STATUS = ("autoshutdown", "api", "status")
UTC = timezone.utc


# ---- a proxied app of the test's own: an RPC route and a websocket a person types into ----------

class RpcHandler(tornado.web.RequestHandler):
    def post(self) -> None:
        self.write({"ok": True, "got": self.request.body.decode()})


class TypingSocket(tornado.websocket.WebSocketHandler):
    def on_message(self, message: str | bytes) -> None:
        self.write_message(message)  # echo, as an editor's page would answer a keystroke


@contextlib.asynccontextmanager
async def proxied_app() -> AsyncIterator[int]:
    """The app on a loopback port (what code-server or RStudio would be), stopped after the test."""
    server = HTTPServer(tornado.web.Application([(r"/rpc", RpcHandler), (r"/ws", TypingSocket)]))
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    try:
        yield sockets[0].getsockname()[1]
    finally:
        server.stop()
        await server.close_all_connections()


@pytest.fixture
def server_extensions() -> dict:
    return {"jupyter_server_proxy": True, "jupyter_autoshutdown": True}


@pytest.fixture
def autoshutdown_config(request) -> dict:
    config = {"idle_timeout": T / 60, "max_check_interval": 0.5, "warning_minutes": 0,
              "app_action": "actions_for_tests:RecordingAction", "login_sessions": False}
    return {**config, **getattr(request, "param", {})}


async def type_through_the_proxy(jp_fetch, jp_ws_fetch, port: int, seconds: float) -> float:
    """A person using the proxied app for `seconds`: RPC POSTs for the first third, then a
    keystroke over its websocket every second. The monotonic time of the last message."""
    from actions_for_tests import RecordingAction

    started = time.monotonic()
    last = started
    while time.monotonic() - started < seconds / 3:
        response = await jp_fetch("proxy", str(port), "rpc", method="POST", body="save")
        assert response.code == 200
        last = time.monotonic()
        await asyncio.sleep(1.0)
    socket = await jp_ws_fetch("proxy", str(port), "ws")
    try:
        while time.monotonic() - started < seconds:
            await socket.write_message("x")
            assert await asyncio.wait_for(socket.read_message(), 10) == "x"
            last = time.monotonic()
            assert not RecordingAction.calls, "the app action ran while a person was typing"
            await asyncio.sleep(1.0)
    finally:
        socket.close()
    return last


async def test_typing_in_an_app_behind_jupyter_server_proxy_keeps_the_server(
    jp_serverapp, jp_fetch, jp_ws_fetch, caplog
):
    from actions_for_tests import RecordingAction

    RecordingAction.calls.clear()
    await start_extension(jp_serverapp)
    async with proxied_app() as port:
        last = await type_through_the_proxy(jp_fetch, jp_ws_fetch, port, 3 * T)
    assert not RecordingAction.calls, RecordingAction.calls
    status = await api(jp_fetch, *STATUS)
    assert status["app"]["last_activity_source"] == "jupyter-server-proxy", status["app"]
    hook = next(source for source in status["activity_sources"] if source["name"] == "last_activity_times")
    assert hook["label"] == "jupyter-server-proxy" and hook["error"] is None, hook

    await wait_for(lambda: RecordingAction.calls, timeout=T + 15, what="the app action")
    waited = time.monotonic() - last
    assert T - 1 <= waited <= T + 15, waited
    status = await api(jp_fetch, *STATUS)
    assert status["app"]["last_run_at"] is not None
    assert any("last activity: jupyter-server-proxy" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("autoshutdown_config", [{"ignored_activity_sources": ["jupyter-server-proxy"]}],
                         indirect=True)
async def test_an_excluded_source_does_not_keep_the_server(jp_serverapp, jp_fetch, jp_ws_fetch):
    from actions_for_tests import RecordingAction

    RecordingAction.calls.clear()
    started = time.monotonic()
    await start_extension(jp_serverapp)
    async with proxied_app() as port:
        socket = await jp_ws_fetch("proxy", str(port), "ws")
        await typed_until_the_action(socket)
    assert "jupyter-server-proxy" in jp_serverapp.web_app.settings["last_activity_times"]
    assert time.monotonic() - started <= T + 15


async def typed_until_the_action(socket) -> None:
    from actions_for_tests import RecordingAction

    try:
        async def typed_until_the_action() -> bool:
            await socket.write_message("x")
            assert await asyncio.wait_for(socket.read_message(), 10) == "x"
            return bool(RecordingAction.calls)

        await wait_for(typed_until_the_action, timeout=T + 15, interval=1.0, what="the app action")
    finally:
        socket.close()


# ---- the interface's rules, on sources of the test's own ---------------------------------------

class FixedSource:
    def __init__(self, name: str, activity: SourceActivity | None) -> None:
        self.name, self.activity = name, activity

    def latest(self) -> SourceActivity | None:
        return self.activity


class BrokenSource:
    name = "broken"

    def latest(self) -> SourceActivity | None:
        raise OSError("injected source failure")


def test_the_latest_source_wins_and_a_failing_one_is_logged_once_and_skipped(caplog):
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    sources = ActivitySources([
        FixedSource("older", SourceActivity(now - timedelta(minutes=5), "older thing")),
        BrokenSource(),
        FixedSource("newer", SourceActivity(now - timedelta(minutes=1), "newer thing")),
        FixedSource("quiet", None),
    ], logging.getLogger("test"), clock=lambda: now)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert sources.latest() == SourceActivity(now - timedelta(minutes=1), "newer thing")
    assert sum("injected source failure" in record.getMessage() for record in caplog.records) == 1
    assert "broken" in sources.failing


def test_a_source_time_ahead_of_the_clock_counts_as_now():
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    sources = ActivitySources([FixedSource("ahead", SourceActivity(now + timedelta(days=1), "x"))],
                              logging.getLogger("test"), clock=lambda: now)
    assert sources.latest() == SourceActivity(now, "x")


def test_the_hook_counts_every_entry_but_our_own_and_the_ignored():
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    settings = {"last_activity_times": {
        "jupyter-server-proxy": now - timedelta(minutes=3),
        "dashboard": now - timedelta(minutes=1),
        "jupyter_autoshutdown": now,
    }}
    assert ServerActivityHook(settings).latest() == SourceActivity(now - timedelta(minutes=1), "dashboard")
    assert ServerActivityHook(settings, ["dashboard"]).latest() == SourceActivity(
        now - timedelta(minutes=3), "jupyter-server-proxy")
    assert ServerActivityHook({}).latest() is None


def test_source_activity_counts_for_the_app_and_names_the_last_activity():
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    snapshot = Snapshot((), (), now - timedelta(minutes=10), server_activity_source="kernel activity",
                        source_activity=now - timedelta(minutes=2),
                        source_activity_label="ssh session of alice on pts/1")
    assert snapshot.last_activity() == (now - timedelta(minutes=2), "ssh session of alice on pts/1")
    older = Snapshot((), (), now, server_activity_source="kernel activity",
                     source_activity=now - timedelta(minutes=2), source_activity_label="x")
    assert older.last_activity() == (now, "kernel activity")


class FakeEntryPoint:
    def __init__(self, name: str, target: object) -> None:
        self.name, self.target = name, target

    def load(self) -> object:
        if isinstance(self.target, Exception):
            raise self.target
        return self.target


class SchedulerJobs:
    """What a platform's package would register: its running jobs are a person's activity."""

    name = "scheduler"

    def __init__(self, serverapp: object, log: logging.Logger) -> None:
        self.serverapp = serverapp

    def latest(self) -> SourceActivity | None:
        return SourceActivity(datetime(2026, 1, 1, tzinfo=UTC), "scheduler job 42")


def test_entry_points_add_sources_and_a_broken_one_is_left_out(caplog):
    serverapp = object()
    entry_points = [
        FakeEntryPoint("scheduler", SchedulerJobs),
        FakeEntryPoint("missing", ImportError("no module named 'gone'")),
        FakeEntryPoint("not-a-source", lambda serverapp, log: object()),
        FakeEntryPoint("ignored", SchedulerJobs),
    ]
    with caplog.at_level(logging.WARNING):
        sources = load_sources(entry_points, serverapp, logging.getLogger("test"), ignored=["ignored"])
    assert [type(source) for source in sources] == [SchedulerJobs]
    assert sources[0].serverapp is serverapp  # type: ignore[attr-defined]
    warned = " ".join(record.getMessage() for record in caplog.records)
    assert "'missing'" in warned and "'not-a-source'" in warned and "'ignored'" not in warned
    assert ActivitySources(sources, logging.getLogger("test")).latest() == SourceActivity(
        datetime(2026, 1, 1, tzinfo=UTC), "scheduler job 42")


def test_terminal_numbers_of_proc_stat():
    assert tty_name((136 << 8) | 3) == "pts/3"
    assert tty_name((137 << 8) | 1) == "pts/257"
    assert tty_name((4 << 8) | 1) == "tty1"
    assert tty_name(0) is None
    assert tty_name((4 << 8) | 64) is None  # a serial line, not a console


async def test_login_sessions_read_a_proc_without_logins(tmp_path):
    """No sshd or login process: nothing counts, and reading says so without failing."""
    proc = tmp_path / "proc"
    (proc / "1").mkdir(parents=True)
    (proc / "1" / "stat").write_text("1 (init (odd) name) S 0 1 1 0 -1 4194560 0 0\n")
    (proc / "2").mkdir()
    (proc / "2" / "stat").write_text(f"2 (bash) S 1 2 2 {(136 << 8) | 4} -1 0 0 0\n")
    sessions = LoginSessions(logging.getLogger("test"), proc=str(proc), dev=str(tmp_path))
    await sessions.start()
    assert sessions.sessions == [] and sessions.latest() is None


def test_the_cli_status_names_the_last_activity():
    from jupyter_autoshutdown.cli.commands import describe_status

    now = datetime.now(timezone.utc)
    status = {
        "settings": {"idle_timeout_minutes": 1}, "count": 3, "now": now.isoformat(),
        "kernels": [], "terminals": [],
        "app": {"action": "server", "action_at": None, "reason": "nothing left",
                "last_activity": (now - timedelta(seconds=12)).isoformat(),
                "last_activity_source": "ssh session of alice on pts/1"},
    }
    text = describe_status(status, "http://127.0.0.1:8888/")
    assert "  last activity: ssh session of alice on pts/1, 12 s ago" in text.splitlines(), text


def test_source_activity_moves_the_app_deadline_and_the_platform_signal_not_the_kernels():
    from jupyter_autoshutdown.core.settings import Settings
    from jupyter_autoshutdown.decide.policy import AppState, app_activity, app_verdict, kernel_verdict

    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    settings = Settings(idle_timeout_minutes=10.0)
    typed = now - timedelta(minutes=2)
    snapshot = Snapshot((), (), now - timedelta(hours=1), source_activity=typed,
                        source_activity_label="ssh session of alice on pts/1")
    verdict = app_verdict(snapshot, settings, now, AppState("server"))
    assert not verdict.due and verdict.deadline == typed + timedelta(minutes=10), verdict
    assert app_activity(snapshot, settings, now).last_active == typed  # Studio's activity file
    without = Snapshot((), (), now - timedelta(hours=1))
    assert app_verdict(without, settings, now, AppState("server")).due
    kernel = ("k", "python3", "idle", now - timedelta(hours=1), 0)
    assert kernel_verdict(kernel, settings, now).due  # a login keeps the machine, not idle kernels


async def test_a_source_whose_refresh_fails_is_logged_once_and_its_last_reading_kept(caplog):
    class FailingScan:
        name = "flaky"
        refreshes = 0

        def latest(self) -> SourceActivity | None:
            return SourceActivity(datetime(2026, 1, 1, tzinfo=UTC), "seen before")

        async def refresh(self) -> None:
            self.refreshes += 1
            raise PermissionError("injected: /proc not readable")

    source = FailingScan()
    sources = ActivitySources([source], logging.getLogger("test"))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            await sources.refresh()
            assert sources.latest() == SourceActivity(datetime(2026, 1, 1, tzinfo=UTC), "seen before")
    assert source.refreshes == 3
    assert sum("injected" in record.getMessage() for record in caplog.records) == 1
    assert sources.failing["flaky"].startswith("refresh:")
