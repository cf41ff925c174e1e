"""Warnings, structured events, Prometheus metrics and the dry run, on a real server."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from helpers import api, kernel_gone, start_extension, start_kernel, wait_for

from jupyter_autoshutdown.core.telemetry import EVENT_SCHEMA_ID

TIMEOUT_SECONDS = 4.0
STATUS = ("autoshutdown", "api", "status")


@pytest.fixture
def events(jp_serverapp):
    received: list[dict] = []

    async def listener(logger, schema_id, data):
        received.append(dict(data))

    jp_serverapp.event_logger.add_listener(schema_id=EVENT_SCHEMA_ID, listener=listener)
    return received


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` in Prometheus text format that carry `labels`; 0 if none."""
    total = 0.0
    for match in re.finditer(r"^" + re.escape(name) + r"(?:\{(.*)\})? (\S+)$", text, re.MULTILINE):
        sample_labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(sample_labels.get(key) == value for key, value in labels.items()):
            total += float(match.group(2))
    return total


@pytest.mark.parametrize("autoshutdown_config", [{
    "idle_timeout": TIMEOUT_SECONDS / 60, "warning_minutes": 1.0, "max_check_interval": 0.5,
    "starting_timeout": 0}])
async def test_warning_event_comes_before_the_cull_event_and_metrics_count_it(
    jp_serverapp, jp_fetch, events
):
    await start_extension(jp_serverapp)
    kernel_id = await start_kernel(jp_fetch)
    status = await api(jp_fetch, *STATUS)
    row = next(row for row in status["kernels"] if row["id"] == kernel_id)
    assert status["settings"]["warning_seconds"] == TIMEOUT_SECONDS / 2  # capped at half the timeout
    assert row["warning_at"] is not None

    await wait_for(lambda: kernel_gone(jp_serverapp, kernel_id), timeout=20)
    await wait_for(lambda: any(e["event"] == "culled" for e in events), timeout=5)
    mine = [e for e in events if e["target"] == kernel_id]
    assert [e["event"] for e in mine] == ["warning", "culled"], mine
    warning, culled = mine
    assert warning["kind"] == "kernel"
    # At or after the deadline seen at start (the kernel's first reply may have moved it).
    assert datetime.fromisoformat(warning["shutdown_at"]) >= datetime.fromisoformat(row["shutdown_at"])
    assert "will be shut down in" in warning["message"]
    assert culled["idle_seconds"] >= TIMEOUT_SECONDS and culled["reason"]

    text = (await jp_fetch("metrics")).body.decode()
    # Created over REST and never talked to, the kernel was still "starting": that is the cause.
    assert metric(text, "jupyter_autoshutdown_shutdowns_total", kind="kernel", cause="starting") >= 1
    assert metric(text, "jupyter_autoshutdown_warnings_total", kind="kernel") >= 1
    assert metric(text, "jupyter_autoshutdown_check_passes_total") >= 1
    assert metric(text, "jupyter_autoshutdown_last_check_timestamp_seconds") > 1.7e9
    assert "jupyter_autoshutdown_seconds_until_next_shutdown" in text


@pytest.mark.parametrize("autoshutdown_config", [{
    "idle_timeout": TIMEOUT_SECONDS / 60, "dry_run": True, "max_check_interval": 0.5,
    "app_action": "actions_for_tests:RecordingAction"}])
async def test_dry_run_reports_what_it_would_do_and_does_nothing(jp_serverapp, jp_fetch, events):
    from actions_for_tests import RecordingAction

    RecordingAction.calls.clear()
    extension = await start_extension(jp_serverapp)
    kernel_id = await start_kernel(jp_fetch)
    await wait_for(lambda: any(e["event"] == "dry_run" and e["target"] == kernel_id for e in events),
                   timeout=20, what="the dry-run report")
    passes = extension.monitor.count
    await wait_for(lambda: extension.monitor.count >= passes + 3, timeout=10)
    assert not kernel_gone(jp_serverapp, kernel_id), "a dry run shuts nothing down"
    assert not RecordingAction.calls
    status = await api(jp_fetch, *STATUS)
    assert status["dry_run"] is True and status["settings"]["dry_run"] is True
    reports = [r for r in status["dry_run_reports"] if r["target"] == kernel_id]
    assert len(reports) == 1, "reported once per timeout, not at every pass"
    assert not [e for e in events if e["event"] == "culled"]


@pytest.mark.parametrize("autoshutdown_config", [{
    "idle_timeout": 2 / 60, "max_check_interval": 0.5, "shutdown_timeout": 1.0}])
async def test_failed_shutdown_emits_a_failure_event_and_counts_it(
    jp_serverapp, jp_fetch, events, monkeypatch
):
    kernel_manager = jp_serverapp.kernel_manager

    async def refuse(kernel_id, *args, **kwargs):  # fault injection
        raise RuntimeError("injected shutdown failure")

    monkeypatch.setattr(kernel_manager, "shutdown_kernel", refuse)
    await start_extension(jp_serverapp)
    kernel_id = await start_kernel(jp_fetch)
    await wait_for(lambda: any(e["event"] == "failure" for e in events), timeout=20)
    failure = next(e for e in events if e["event"] == "failure")
    assert failure["kind"] == "kernel" and failure["target"] == kernel_id
    assert "injected shutdown failure" in failure["message"] and failure["retry_at"]
    text = (await jp_fetch("metrics")).body.decode()
    assert metric(text, "jupyter_autoshutdown_failures_total", kind="kernel") >= 1
