"""The server's idleness counts what people do, not what an open tab polls (real server, real kernels).

The app action here is a recording one (loaded by import path, as a user's own would be); the
Studio Classic case is in test_sagemaker.py and the real-browser case in test_frontend_e2e.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import datetime, timedelta, timezone

import jupyter_server
import pytest
from actions_for_tests import RecordingAction
from helpers import api, extension_of, start_extension, wait_for, wait_pass_after
from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.httpclient import HTTPClientError

from jupyter_autoshutdown.observe.activity import PeopleActivity

TIMEOUT_SECONDS = 3.0
#: How late the action may come after its deadline on a busy CI machine; typically ~0.05 s.
PUNCTUAL_SECONDS = 1.0

#: These compare with jupyter_server's own record of API activity, which before 2.8 (the lowest
#: jupyter_server declared is 2.4) is not kept for token-authenticated requests at all.
NEEDS_SERVER_ACTIVITY_RECORD = pytest.mark.skipif(
    jupyter_server.version_info < (2, 8),
    reason="jupyter_server < 2.8 records no API activity for token requests",
)


@pytest.fixture
def autoshutdown_config():
    return {"idle_timeout": TIMEOUT_SECONDS / 60, "app_action": "actions_for_tests:RecordingAction",
            "warning_minutes": 0}


@pytest.fixture(autouse=True)
def reset_recording_action():
    RecordingAction.calls.clear()
    RecordingAction.max_running = 0


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


class OtherExtensionStatus(APIHandler):
    """Stands for another extension's periodic POST (jupyterlab-git posts its status every 3 s)."""

    @web.authenticated
    def post(self):
        self.finish(json.dumps({"code": 0, "files": []}))


def install_other_extension(serverapp) -> None:
    serverapp.web_app.add_handlers(".*$", [(serverapp.base_url + "git/status", OtherExtensionStatus)])


@contextlib.asynccontextmanager
async def open_tab_polling(jp_fetch, interval: float = 0.5):
    """Replays an open, visible JupyterLab tab: GET kernels, sessions, terminals and contents, and
    another extension's POST, every `interval` seconds, until the block ends (or fails)."""
    polls = {"count": 0}

    async def poll() -> None:
        while True:
            for route in (("api", "kernels"), ("api", "sessions"), ("api", "terminals"),
                          ("api", "contents")):
                await jp_fetch(*route)
            await jp_fetch("git", "status", method="POST", body="{}")
            polls["count"] += 1
            await asyncio.sleep(interval)

    task = asyncio.create_task(poll())
    try:
        yield polls
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def app_deadline(jp_fetch) -> datetime:
    status = await api(jp_fetch, "autoshutdown", "api", "status")
    assert status["app"]["action_at"], status["app"]
    return parse(status["app"]["action_at"])


@NEEDS_SERVER_ACTIVITY_RECORD
async def test_an_open_tab_polling_does_not_delay_the_app_action(jp_serverapp, jp_fetch):
    install_other_extension(jp_serverapp)
    await start_extension(jp_serverapp)
    deadline = await app_deadline(jp_fetch)
    async with open_tab_polling(jp_fetch) as polls:
        await wait_for(lambda: RecordingAction.calls, timeout=TIMEOUT_SECONDS + 10, what="the app action")
        # The polls went on all the while, and jupyter_server itself counted every one of them.
        await wait_for(lambda: jp_serverapp.web_app.last_activity() > RecordingAction.calls[0], timeout=5)
        assert polls["count"] >= 3
    lateness = (RecordingAction.calls[0] - deadline).total_seconds()
    assert 0 <= lateness <= PUNCTUAL_SECONDS, lateness
    status = await api(jp_fetch, "autoshutdown", "api", "status")
    assert status["app"]["last_activity_source"] == "server start"
    assert status["settings"]["server_activity"] == "people"


@NEEDS_SERVER_ACTIVITY_RECORD
@pytest.mark.parametrize(
    "autoshutdown_config",
    [{"idle_timeout": TIMEOUT_SECONDS / 60, "app_action": "actions_for_tests:RecordingAction",
      "server_activity": "any_request", "max_check_interval": 0.5}],
)
async def test_any_request_mode_lets_an_open_tab_keep_the_server(jp_serverapp, jp_fetch):
    install_other_extension(jp_serverapp)
    extension = await start_extension(jp_serverapp)
    async with open_tab_polling(jp_fetch):
        await wait_pass_after(extension, utcnow() + timedelta(seconds=2 * TIMEOUT_SECONDS))
        assert RecordingAction.calls == [], "jupyter_server's meaning: every request is activity"
    stopped_polling = utcnow()
    await wait_for(lambda: RecordingAction.calls, timeout=TIMEOUT_SECONDS + 10, what="the app action")
    assert RecordingAction.calls[0] - stopped_polling >= timedelta(seconds=TIMEOUT_SECONDS - 0.6)


async def test_a_save_and_a_front_end_report_each_start_a_new_idle_period(jp_serverapp, jp_fetch):
    extension = await start_extension(jp_serverapp)
    first_deadline = await app_deadline(jp_fetch)
    await wait_for(lambda: utcnow() >= first_deadline - timedelta(seconds=1), timeout=10)

    saved_at = utcnow()
    await api(jp_fetch, "api", "contents", "notes.txt", method="PUT",
              body={"type": "file", "format": "text", "content": "a person saved this"})
    status = await api(jp_fetch, "autoshutdown", "api", "status")
    assert status["app"]["last_activity_source"] == "API request", status["app"]
    assert status["app"]["action_at"], status["app"]
    deadline = parse(status["app"]["action_at"])
    assert deadline >= saved_at + timedelta(seconds=TIMEOUT_SECONDS)
    await wait_for(lambda: RecordingAction.calls, timeout=TIMEOUT_SECONDS + 10, what="the app action")
    assert RecordingAction.calls[0] >= deadline
    assert (RecordingAction.calls[0] - deadline).total_seconds() <= PUNCTUAL_SECONDS

    # The action ran; a person comes back to the page: a new idle period, and it runs again.
    await wait_for(lambda: utcnow() > RecordingAction.calls[0] + timedelta(seconds=1), timeout=5)
    reported = await api(jp_fetch, "autoshutdown", "api", "activity", method="POST",
                         body={"idle_seconds": 0.5})
    assert parse(reported["last_activity"]) <= utcnow() - timedelta(seconds=0.5)
    status = await api(jp_fetch, "autoshutdown", "api", "status")
    assert status["app"]["last_activity_source"] == "front end interaction"
    deadline = parse(status["app"]["action_at"])
    assert deadline == parse(reported["last_activity"]) + timedelta(seconds=TIMEOUT_SECONDS)
    await wait_for(lambda: len(RecordingAction.calls) == 2, timeout=TIMEOUT_SECONDS + 10)
    assert RecordingAction.calls[1] >= deadline
    assert extension.monitor.app.last_error is None


async def test_requests_anyone_can_send_without_a_token_are_not_activity(
    jp_serverapp, jp_fetch, jp_http_port, jp_base_url
):
    """An unauthenticated write (403) and a cross-site one with a foreign Origin and a text/plain
    body (an error too) from anyone who can reach the port neither move the server's last
    activity nor delay the app action."""
    from tornado.httpclient import AsyncHTTPClient

    await start_extension(jp_serverapp)
    before = await api(jp_fetch, "autoshutdown", "api", "status")
    base = f"http://localhost:{jp_http_port}{jp_base_url}"
    client = AsyncHTTPClient()
    attacks = [
        dict(url=base + "api/contents/x", method="POST", body="{}"),
        dict(url=base + "api/sessions", method="POST", body='{"path": "a.ipynb", "type": "notebook"}',
             headers={"Origin": "http://attacker.example", "Content-Type": "text/plain"}),
        dict(url=base + "api/kernels", method="POST", body="{}", headers={"Authorization": "token wrong"}),
    ]
    for _ in range(3):
        for attack in attacks:
            url = attack.pop("url")
            reply = await client.fetch(url, raise_error=False, **attack)
            attack["url"] = url
            assert reply.code >= 400, (attack["url"], reply.code)
    after = await api(jp_fetch, "autoshutdown", "api", "status")
    assert after["app"]["last_activity"] == before["app"]["last_activity"], after["app"]
    assert after["app"]["last_activity_source"] != "API request"
    assert after["app"]["action_at"] == before["app"]["action_at"]
    await wait_for(lambda: RecordingAction.calls, timeout=TIMEOUT_SECONDS + 10, what="the app action")
    assert RecordingAction.calls[0] - parse(before["app"]["action_at"]) <= timedelta(seconds=PUNCTUAL_SECONDS)


async def test_a_kernel_start_in_flight_at_the_deadline_postpones_the_app_action(
    jp_serverapp, jp_fetch, monkeypatch
):
    extension = await start_extension(jp_serverapp)
    kernel_manager = jp_serverapp.kernel_manager
    release = asyncio.Event()
    real_start = kernel_manager.start_kernel

    async def slow_start(*args, **kwargs):
        # Fault injection: a kernel start that takes until the test releases it.
        await release.wait()
        return await real_start(*args, **kwargs)

    monkeypatch.setattr(kernel_manager, "start_kernel", slow_start)
    deadline = await app_deadline(jp_fetch)
    await wait_for(lambda: utcnow() >= deadline - timedelta(seconds=0.3), timeout=10)
    start = asyncio.ensure_future(jp_fetch("api", "kernels", method="POST", body='{"name": "python3"}'))
    try:
        await wait_pass_after(extension, deadline + timedelta(seconds=1))
        assert RecordingAction.calls == [], "the action must not run under a kernel start"
        status = await api(jp_fetch, "autoshutdown", "api", "status")
        assert status["app"]["requests_in_flight"] == ["POST api/kernels"]
        assert status["app"]["reason"] == "waiting for POST api/kernels to be answered"
        release.set()
        kernel_id = json.loads((await start).body)["id"]
    finally:
        release.set()
        with contextlib.suppress(Exception):
            await start
    # Answered: the kernel is there, so the action still waits (now for the kernel).
    assert kernel_id in kernel_manager
    status = await api(jp_fetch, "autoshutdown", "api", "status")
    assert status["app"]["requests_in_flight"] == []
    assert "1 kernel(s)" in status["app"]["reason"]
    assert RecordingAction.calls == []


@pytest.mark.parametrize("body", ['{"idle_seconds": -1}', '{"idle_seconds": 301}', '{"idle_seconds": true}',
                                  '{"idle_seconds": "5"}', '{"when": 1}', "[]", "not json"])
async def test_bad_activity_reports_are_400_and_change_nothing(jp_serverapp, jp_fetch, body):
    extension = await start_extension(jp_serverapp)
    before = extension.activity.last_activity
    with pytest.raises(HTTPClientError) as error:
        await jp_fetch("autoshutdown", "api", "activity", method="POST", body=body)
    assert error.value.code == 400
    assert json.loads(error.value.response.body)["message"]
    assert extension.activity.last_activity == before


async def test_an_empty_activity_report_means_now(jp_serverapp, jp_fetch):
    await start_extension(jp_serverapp)
    before = utcnow()
    reported = await api(jp_fetch, "autoshutdown", "api", "activity", method="POST", body="")
    assert parse(reported["last_activity"]) >= before
    assert extension_of(jp_serverapp).activity.last_source == "front end interaction"


# ---- what counts: pure logic -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("method", "path", "query", "counts"),
    [
        ("PUT", "/base/api/contents/work/a.ipynb", "", True),
        ("POST", "/base/api/contents/work", "", True),
        ("PATCH", "/base/api/contents/a.ipynb", "", True),
        ("DELETE", "/base/api/contents/a.ipynb", "", True),
        ("POST", "/base/api/kernels", "", True),
        ("POST", "/base/api/kernels/abc/restart", "", True),
        ("POST", "/base/api/sessions", "", True),
        ("DELETE", "/base/api/terminals/1", "", True),
        ("POST", "/base/api/contents/notes%2Etxt", "", True),
        # The polls of an open tab.
        ("GET", "/base/api/kernels", "", False),
        ("GET", "/base/api/contents/work", "content=1", False),
        ("HEAD", "/base/api/contents/a.ipynb", "", False),
        ("OPTIONS", "/base/api/sessions", "", False),
        # Other extensions, our own routes, opted-out requests, other base URLs.
        ("POST", "/base/git/status", "", False),
        ("POST", "/base/autoshutdown/api/keepalive", "", False),
        ("POST", "/base/sagemaker-studio-autoshutdown/idle_checker", "", False),
        ("DELETE", "/base/sagemaker/api/apps/x", "", False),
        ("PUT", "/base/api/contents/a.ipynb", "no_track_activity=1", False),
        ("PUT", "/other/api/contents/a.ipynb", "", False),
        ("POST", "/base/api/kernelspecs", "", False),
        ("POST", "/base/api/contentsextra", "", False),
    ],
)
def test_which_requests_count(method, path, query, counts):
    assert PeopleActivity("/base/").counts(method, path, query) is counts


def test_activity_paths_replace_the_defaults():
    tracker = PeopleActivity("/", paths=[r"api/contents(/.*)?", r"myext/save"])
    assert tracker.counts("POST", "/myext/save")
    assert not tracker.counts("POST", "/api/kernels")
    assert not PeopleActivity("/", paths=[]).counts("PUT", "/api/contents/a")


def test_only_requests_answered_with_success_count():
    clock = iter(datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=s) for s in range(10))
    tracker = PeopleActivity("/", clock=lambda: next(clock))

    class Request:
        method, path, query = "POST", "/api/kernels", ""

    request = Request()
    for refused in (401, 403, 404, 400, 500):
        assert tracker.request_started(request)
        assert tracker.last_activity is None  # in flight is not activity: nobody knows whose it is
        assert tracker.in_flight(datetime(2026, 1, 1, tzinfo=timezone.utc)) == ("POST api/kernels",)
        tracker.request_finished(request, refused)
        assert tracker.in_flight(datetime(2026, 1, 1, tzinfo=timezone.utc)) == ()
        assert tracker.last_activity is None
    assert tracker.request_started(request)
    tracker.request_finished(request, 201)
    assert tracker.last_activity is not None
