"""Studio's own idle shutdown, cooperating: the real jupyter-activity-monitor-extension (what
sagemaker-distribution preinstalls, and what Studio's idle shutdown asks, ``GET api/idle``) loaded
next to this extension in a server configured as a Studio JupyterLab space."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from helpers import KernelSession, api, kernel_gone, start_extension, wait_for

from jupyter_autoshutdown.act.studio_signal import SAGEMAKER_ACTIVITY_FILE, parse_timestamp

STATUS = ("autoshutdown", "api", "status")
SPACE = {
    "DomainId": "d-space123", "SpaceName": "alice-space", "UserProfileName": "alice",
    "AppType": "JupyterLab", "ResourceName": "default",
    "ResourceArn": "arn:aws:sagemaker:us-west-2:123456789012:app/d-space123/alice-space/jupyterlab/default",
}
#: jupyter-activity-monitor-extension, installed by scripts/test-setup.sh with --no-deps into this
#: folder (its pin pyzmq<=26.4 must not change the rest of the test environment).
PEERS = Path(__file__).parent / ".peers" / "activity-monitor"


@pytest.fixture
def check_interval():
    return 60.0  # the default


@pytest.fixture
def autoshutdown_config(tmp_path, check_interval):
    path = tmp_path / "resource-metadata.json"
    path.write_text(json.dumps(SPACE))
    # No sagemaker_activity_file: in a Studio JupyterLab space the default is Studio's own file.
    return {"idle_timeout": 60, "app_action": "none", "sagemaker_metadata_path": str(path),
            "max_check_interval": check_interval}


@pytest.fixture
def activity_monitor(monkeypatch):
    """The real jupyter-activity-monitor-extension (as in sagemaker-distribution) on sys.path."""
    if not (PEERS / "jupyter_activity_monitor_extension").is_dir():
        if os.environ.get("CI"):
            raise AssertionError(f"{PEERS} is missing: scripts/test-setup.sh installs it")
        pytest.skip(f"jupyter-activity-monitor-extension is not installed in {PEERS}: "
                    "run `bash scripts/test-setup.sh`")
    monkeypatch.syspath_prepend(str(PEERS))
    # Its reader's path is fixed: keep what this machine had there, and put it back after.
    path = Path(SAGEMAKER_ACTIVITY_FILE)
    saved = path.read_bytes() if path.exists() else None
    path.unlink(missing_ok=True)
    yield
    if saved is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(saved)


@pytest.fixture
def server_extensions(activity_monitor):  # on sys.path before the server loads it
    return {"jupyter_server_terminals": True, "jupyter_autoshutdown": True,
            "jupyter_activity_monitor_extension": True}


async def idle_seconds_per_studio(jp_fetch) -> float:
    """What Studio's idle shutdown sees: now minus api/idle's lastActiveTimestamp."""
    reply = await api(jp_fetch, "api", "idle")
    last = datetime.strptime(reply["lastActiveTimestamp"], "%Y-%m-%dT%H:%M:%S.%fz")
    last = last.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - last).total_seconds()


@pytest.mark.timeout(300)
async def test_studio_sees_a_silent_cell_as_activity(activity_monitor, jp_serverapp, jp_fetch, jp_ws_fetch):
    await idle_seconds_per_studio(jp_fetch)  # Studio polls from the server's start
    extension = await start_extension(jp_serverapp)
    assert extension.service.activity_file is not None
    assert str(extension.service.activity_file.path) == SAGEMAKER_ACTIVITY_FILE
    session = await api(jp_fetch, "api", "sessions", method="POST", body={
        "path": "train.ipynb", "type": "notebook", "name": "train.ipynb", "kernel": {"name": "python3"}})
    kernel_id = session["kernel"]["id"]
    client = await KernelSession.connect(jp_ws_fetch, kernel_id)
    try:
        # A cell that prints nothing for 100 s: its kernel's last_activity stays at its start.
        await client.send_execute("import time; time.sleep(100)")
        started = time.monotonic()
        worst = 0.0
        while time.monotonic() - started < 97:
            worst = max(worst, await idle_seconds_per_studio(jp_fetch))
            assert worst <= 90, f"Studio saw the space idle for {worst:.0f} s while a cell ran"
            await asyncio.sleep(3)
        print(f"silent cell: Studio's api/idle at most {worst:.1f} s behind now over 97 s")
        written = (await api(jp_fetch, *STATUS))["activity_file"]
        assert written["path"] == SAGEMAKER_ACTIVITY_FILE and written["error"] is None
        assert written["held_by"] == f"kernel {kernel_id} is running code", written
    finally:
        client.close()
        await jp_serverapp.kernel_manager.shutdown_kernel(kernel_id, now=True)
    assert kernel_gone(jp_serverapp, kernel_id)


# The file follows activity within one check interval (max_check_interval, 60 s by default).
@pytest.mark.parametrize("check_interval", [1.0])
async def test_studio_follows_a_persons_activity_reported_by_the_page(activity_monitor, jp_serverapp,
                                                                       jp_fetch):
    await idle_seconds_per_studio(jp_fetch)
    await start_extension(jp_serverapp)
    await asyncio.sleep(3)  # let Studio's view age: nothing happens meanwhile
    before = await idle_seconds_per_studio(jp_fetch)
    reported = datetime.now(timezone.utc)
    await api(jp_fetch, "autoshutdown", "api", "activity", method="POST", body={"idle_seconds": 0})

    async def moved():
        return (await idle_seconds_per_studio(jp_fetch)) < before - 1

    await wait_for(moved, timeout=10, what="api/idle to move with the reported activity")
    held = parse_timestamp(Path(SAGEMAKER_ACTIVITY_FILE).read_text())
    assert held is not None and held >= reported.replace(microsecond=0)
