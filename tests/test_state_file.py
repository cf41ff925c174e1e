"""Whatever is at the state file's path, the extension starts, culls, and the server stops cleanly.

Real servers (in process, and as a subprocess for stopping); the contents are what a crash, a
disk error or a mistaken edit leave there.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest
from helpers import api, start_extension
from server_process import ServerProcess

SETTINGS = ("autoshutdown", "api", "settings")

BAD_CONTENTS = {
    "latin-1": b'{"n":"caf\xe9"}',
    "random-bytes": random.Random(7).randbytes(4096),
    "deep-nesting": b"[" * 100_000,
    "deep-object": b'{"settings":' * 50_000,
    "not-an-object": b"[1, 2]",
    "empty": b"",
    "huge": b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}',
}


@pytest.fixture
def state_path(tmp_path, request):
    """The state file, holding `request.param` (bytes), or a FIFO for "fifo", before the server starts."""
    path = tmp_path / "autoshutdown-state" / "state.json"
    path.parent.mkdir()
    content = getattr(request, "param", None)
    if content == "fifo":
        os.mkfifo(path)
    elif content is not None:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize("state_path", list(BAD_CONTENTS.values()), ids=list(BAD_CONTENTS), indirect=True)
async def test_any_content_is_logged_ignored_and_kept_aside(jp_serverapp, jp_fetch, state_path, request):
    extension = await start_extension(jp_serverapp)
    assert extension.monitor.running
    settings = await api(jp_fetch, *SETTINGS)
    assert settings["idle_timeout_minutes"] == 120  # the static config
    aside = list(state_path.parent.glob("state.json.corrupt-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes() == request.node.callspec.params["state_path"]  # kept for the operator
    # A change is saved again, to a fresh file.
    await api(jp_fetch, *SETTINGS, method="PATCH", body={"idle_timeout_minutes": 7})
    assert json.loads(state_path.read_text())["settings"] == {"idle_timeout_minutes": 7}


@pytest.mark.parametrize("state_path", ["fifo"], indirect=True)
@pytest.mark.timeout(60)
async def test_a_fifo_at_the_path_does_not_hang_the_start(jp_serverapp, jp_fetch, state_path):
    await start_extension(jp_serverapp)
    assert (await api(jp_fetch, *SETTINGS))["idle_timeout_minutes"] == 120
    await api(jp_fetch, *SETTINGS, method="PATCH", body={"idle_timeout_minutes": 9})
    assert json.loads(state_path.read_text())["settings"]["idle_timeout_minutes"] == 9


@pytest.fixture
def left_temp_files(state_path):
    """Temporary files as a kill during a write leaves them: one old, one being written now."""
    state_path.parent.mkdir(parents=True, exist_ok=True)
    old = state_path.parent / ".state-killed.tmp"
    old.write_text('{"settings": {')
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    current = state_path.parent / ".state-writing.tmp"
    current.write_text("{")
    return old, current


async def test_temp_files_left_by_a_killed_write_are_removed_at_start(
    left_temp_files, jp_serverapp, jp_fetch
):
    old, current = left_temp_files
    await start_extension(jp_serverapp)
    assert not old.exists()
    assert current.exists()  # another server's write in progress is left alone


def test_the_server_stops_at_once_when_the_extension_failed_to_start(home):
    # Fault injection: the monitor cannot be created, so the extension's start fails midway.
    config_dir = home / ".jupyter"
    config_dir.mkdir()
    (config_dir / "jupyter_server_config.py").write_text(
        "import jupyter_autoshutdown.act.monitor as monitor\n"
        "def broken(*args, **kwargs):\n"
        "    raise RuntimeError('injected: the monitor cannot start')\n"
        "monitor.Monitor.__init__ = broken\n"
    )
    server = ServerProcess(home)
    try:
        assert "injected: the monitor cannot start" in server.output()
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(10)
        assert time.monotonic() - started < 10
        assert "AttributeError" not in server.output()
    finally:
        server.stop()


def test_two_servers_sharing_the_state_file_keep_each_others_changes(home):
    first = ServerProcess(home)
    second = ServerProcess(home)
    try:
        assert first.request("PATCH", "autoshutdown/api/settings",
                             json={"idle_timeout_minutes": 30}).status_code == 200
        assert second.request("PATCH", "autoshutdown/api/settings",
                              json={"keep_terminals": True}).status_code == 200
    finally:
        first.stop()
        second.stop()
    restarted = ServerProcess(home)
    try:
        settings = restarted.request("GET", "autoshutdown/api/settings").json()
        assert (settings["idle_timeout_minutes"], settings["keep_terminals"]) == (30, True)
        assert "static config changed" not in restarted.output()
    finally:
        restarted.stop()


def test_a_saved_value_this_version_cannot_use_costs_no_other(home):
    """A newer version's value ("cull_busy": "auto") or a bad zone is set aside with a warning;
    the valid saved values apply, and the unusable one is never written back as a setting."""
    path = home / ".local/share/jupyter/jupyter_autoshutdown/state.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 1, "settings": {
        "idle_timeout_minutes": 30, "cull_busy": "auto", "daily_stop_timezone": "Mars/Olympus_Mons",
    }}))
    allowed = "--AutoShutdown.allow_user_daily_stop=True"  # else a saved daily stop is just dropped
    server = ServerProcess(home, allowed)
    try:
        settings = server.request("GET", "autoshutdown/api/settings").json()
        assert settings["idle_timeout_minutes"] == 30 and settings["cull_busy"] is False
        assert "cannot use" in server.output() and "cull_busy" in server.output()
        changed = server.request("PATCH", "autoshutdown/api/settings", json={"keep_terminals": True})
        assert changed.status_code == 200 and changed.json()["persisted"] is True
    finally:
        server.stop()
    on_disk = json.loads(path.read_text())
    assert on_disk["settings"] == {"idle_timeout_minutes": 30, "keep_terminals": True}
    assert on_disk["set_aside"] == {"cull_busy": "auto", "daily_stop_timezone": "Mars/Olympus_Mons"}
    restarted = ServerProcess(home, allowed)
    try:
        settings = restarted.request("GET", "autoshutdown/api/settings").json()
        assert (settings["idle_timeout_minutes"], settings["keep_terminals"]) == (30, True)
        assert "cannot use" not in restarted.output()
    finally:
        restarted.stop()
