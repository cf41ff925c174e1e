"""The save barrier before the app action, on a real server: pages report unsaved documents, the
server asks them to save (an event on its event stream), saves on auto-shutdown's behalf do not
count as activity, and documents that cannot be saved hold the action for the grace period only.

The page is played by the test over the same REST route and event stream the front end uses; the
browser test (test_frontend_e2e.py) does it with JupyterLab itself.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from actions_for_tests import RecordingAction
from helpers import api, extension_of, start_extension, wait_for
from tornado.httpclient import HTTPClientError

from jupyter_autoshutdown.act import documents as documents_module
from jupyter_autoshutdown.core.telemetry import EVENT_SCHEMA_ID

TIMEOUT_SECONDS = 4.0
GRACE_SECONDS = 6.0
NOTEBOOK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
CONFIG = {"idle_timeout": TIMEOUT_SECONDS / 60, "unsaved_grace_minutes": GRACE_SECONDS / 60,
          "app_action": "actions_for_tests:RecordingAction", "max_check_interval": 0.5}


@pytest.fixture
def autoshutdown_config(request):
    return {**CONFIG, **getattr(request, "param", {})}


@pytest.fixture(autouse=True)
def reset_recording_action():
    RecordingAction.calls.clear()


class SaveRequests:
    """The server's save_request events, as a page hears them on the event stream."""

    def __init__(self, serverapp: Any) -> None:
        self.serverapp = serverapp
        self.at: list[datetime] = []
        self.answer: Any = None  # a coroutine function run for each request, as a page would
        serverapp.event_logger.add_listener(schema_id=EVENT_SCHEMA_ID, listener=self.heard)

    async def heard(self, logger: Any, schema_id: str, data: Any) -> None:
        if data.get("event") == "save_request":
            self.at.append(datetime.now(timezone.utc))
            if self.answer is not None:
                await self.answer()

    def close(self) -> None:
        self.serverapp.event_logger.remove_listener(schema_id=EVENT_SCHEMA_ID, listener=self.heard)


@pytest.fixture
def save_requests(jp_serverapp):
    requests = SaveRequests(jp_serverapp)
    yield requests
    requests.close()


async def report(jp_fetch, **fields: Any) -> dict:
    return await api(jp_fetch, "autoshutdown", "api", "documents", method="POST",
                     body={"page": "p1", **fields})


def app_deadline(status: dict) -> datetime:
    return datetime.fromisoformat(status["app"]["action_at"])


async def test_a_page_saves_when_asked_and_the_action_runs_on_time(jp_serverapp, jp_fetch, save_requests):
    await api(jp_fetch, "api", "contents", "a.ipynb", method="PUT",
              body={"type": "notebook", "content": NOTEBOOK})
    extension = await start_extension(jp_serverapp)
    await report(jp_fetch, unsaved=["a.ipynb"])
    deadline = app_deadline(await api(jp_fetch, "autoshutdown", "api", "status"))
    activity_before_save: list[Any] = []

    async def save_as_the_page_does() -> None:
        await report(jp_fetch, unsaved=["a.ipynb"], saving=["a.ipynb"])
        activity_before_save.append(extension.activity.last_activity)
        content = {**NOTEBOOK, "metadata": {"saved_on_behalf": True}}
        await api(jp_fetch, "api", "contents", "a.ipynb", method="PUT",
                  body={"type": "notebook", "content": content})
        await api(jp_fetch, "api", "contents", "a.ipynb", "checkpoints", method="POST", body="")
        await report(jp_fetch, unsaved=[], saved=["a.ipynb"])

    save_requests.answer = lambda: asyncio.ensure_future(save_as_the_page_does())
    await wait_for(lambda: RecordingAction.calls, timeout=TIMEOUT_SECONDS + 10, what="the app action")
    ran = RecordingAction.calls[0]
    assert len(save_requests.at) == 1 and deadline <= save_requests.at[0] <= ran
    late = (ran - deadline).total_seconds()
    print(f"app action {late:.3f} s after its deadline, with one page's save before it")
    assert late < 2.0, late
    # The save on our behalf moved nothing: the server's last activity is still the first PUT.
    assert extension.activity.last_activity == activity_before_save[0]
    saved = await api(jp_fetch, "api", "contents", "a.ipynb")
    assert saved["content"]["metadata"] == {"saved_on_behalf": True}
    documents = (await api(jp_fetch, "autoshutdown", "api", "status"))["documents"]
    assert documents["last_save"]["saved"] == ["a.ipynb"] and documents["unsaved"] == []
    # Another page's plain report (no round of saving) leaves the last save as it was.
    await api(jp_fetch, "autoshutdown", "api", "documents", method="POST",
              body={"page": "p2", "unsavable": [{"path": "ro.ipynb", "reason": "read-only"}]})
    documents = (await api(jp_fetch, "autoshutdown", "api", "status"))["documents"]
    assert documents["last_save"]["saved"] == ["a.ipynb"], documents


async def test_a_document_that_cannot_be_saved_holds_the_action_for_the_grace_period_only(
    jp_serverapp, jp_fetch, save_requests, caplog
):
    extension = await start_extension(jp_serverapp)
    unsavable = [{"path": "ro.ipynb", "reason": "Permission denied"}]
    await report(jp_fetch, unsavable=unsavable)
    deadline = app_deadline(await api(jp_fetch, "autoshutdown", "api", "status"))
    # The page's answer after a round of saving that failed (`saved`, empty, ends the round).
    save_requests.answer = lambda: asyncio.ensure_future(report(jp_fetch, unsavable=unsavable, saved=[]))
    await wait_for(lambda: save_requests.at, timeout=TIMEOUT_SECONDS + 10, what="the save request")
    await wait_for(lambda: extension.monitor.app.waiting_for, what="the barrier to wait")
    documents = (await api(jp_fetch, "autoshutdown", "api", "status"))["documents"]
    assert documents["waiting_for"] == ["ro.ipynb"] and documents["unsavable"] == unsavable
    # The grace period counts from the pass that found the action due (at most a pass after it).
    grace_from = datetime.fromisoformat(documents["waiting_until"]) - timedelta(seconds=GRACE_SECONDS)
    assert deadline <= grace_from <= deadline + timedelta(seconds=1), (grace_from, deadline)
    assert not RecordingAction.calls
    await wait_for(lambda: RecordingAction.calls, timeout=GRACE_SECONDS + 10, what="the app action")
    waited = (RecordingAction.calls[0] - deadline).total_seconds()
    print(f"app action {waited:.3f} s after its deadline, one document unsavable, grace {GRACE_SECONDS:g} s")
    assert GRACE_SECONDS <= waited <= GRACE_SECONDS + 2.0, waited
    assert "with unsaved documents in open pages (not saved in time): ro.ipynb" in caplog.text
    last = (await api(jp_fetch, "autoshutdown", "api", "status"))["documents"]["last_save"]
    assert last["failed"] == unsavable


async def test_a_page_that_never_answers_is_waited_for_a_bounded_time(
    jp_serverapp, jp_fetch, save_requests, monkeypatch
):
    monkeypatch.setattr(documents_module, "ANSWER_SECONDS", 2.0)
    await start_extension(jp_serverapp)
    await report(jp_fetch, unsaved=["gone.ipynb"])  # then the page is closed without a word
    deadline = app_deadline(await api(jp_fetch, "autoshutdown", "api", "status"))
    await wait_for(lambda: RecordingAction.calls, timeout=TIMEOUT_SECONDS + 10, what="the app action")
    waited = (RecordingAction.calls[0] - deadline).total_seconds()
    assert 2.0 <= waited <= 4.0, waited


@pytest.mark.parametrize("autoshutdown_config", [{"unsaved_grace_minutes": 0}], indirect=True)
async def test_no_grace_means_the_action_never_waits(jp_serverapp, jp_fetch, save_requests):
    await start_extension(jp_serverapp)
    await report(jp_fetch, unsavable=[{"path": "ro.ipynb", "reason": "read-only"}])
    deadline = app_deadline(await api(jp_fetch, "autoshutdown", "api", "status"))
    await wait_for(lambda: RecordingAction.calls, timeout=TIMEOUT_SECONDS + 10, what="the app action")
    assert (RecordingAction.calls[0] - deadline).total_seconds() < 1.5


async def test_a_closed_page_is_forgotten_and_reports_are_validated(jp_serverapp, jp_fetch):
    await start_extension(jp_serverapp)
    held = await report(jp_fetch, unsaved=["a.ipynb"])
    assert held["unsaved"] == ["a.ipynb"]
    assert (await report(jp_fetch, closing=True))["unsaved"] == []
    for body in ({"unsaved": ["a"]}, {"page": "", "unsaved": []}, {"page": "p", "unsaved": "a.ipynb"},
                 {"page": "p", "unsavable": [{"path": "a", "why": "x"}]}, {"page": "p", "saved": [3]},
                 {"page": "p", "closing": "yes"}, {"page": "p", "extra": 1}):
        with pytest.raises(HTTPClientError) as refused:
            await api(jp_fetch, "autoshutdown", "api", "documents", method="POST", body=body)
        assert refused.value.code == 400, body
        assert json.loads(refused.value.response.body)["message"]
    assert extension_of(jp_serverapp).service.documents.unsaved(datetime.now(timezone.utc)) == ([], [])
