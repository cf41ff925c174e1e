"""The JupyterLab front end in a real browser against a real `jupyter lab` with a short timeout.

Headless Chromium from Debian's packages, driven by playwright-core (ui-tests/e2e.mjs). Screenshots
of each step land in test-output/e2e/ (CI keeps that folder). Without Node, the npm packages or
Chromium the test skips with the reason; in CI (CI set) it fails instead, so it never passes
silently.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from server_process import TOKEN, ServerProcess

ROOT = Path(__file__).resolve().parent.parent
#: Screenshots; .ci/run names another folder for its second run (the newest JupyterLab).
OUTPUT = ROOT / "test-output" / os.environ.get("AUTOSHUTDOWN_E2E_OUTPUT", "e2e")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MINUTES = 0.75  # 45 s: long enough to look, short enough to wait for
WARNING_MINUTES = 0.25  # the warning comes 15 s before
# The browser tests need Notebook 7 too: `pip install -e ".[test]"` brings it.


def missing_parts() -> list[str]:
    missing = []
    if shutil.which("node") is None:
        missing.append("node")
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        missing.append("npm packages (npm ci)")
    if not Path(CHROMIUM).exists():
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    if not (ROOT / "jupyter_autoshutdown" / "labextension" / "package.json").exists():
        missing.append("the built front end (npm run build:prod)")
    return missing


MISSING = missing_parts()
if MISSING:
    if os.environ.get("CI"):
        raise RuntimeError(f"the browser test cannot run: missing {', '.join(MISSING)}")
    pytestmark = pytest.mark.skip(reason=f"missing {', '.join(MISSING)}")

NOTEBOOK = {"cells": [{"cell_type": "code", "id": "c1", "source": "x = 1", "metadata": {}, "outputs": [],
                       "execution_count": None}],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                        "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def quiet_lab_settings(home: Path, **plugins: dict) -> None:
    """User settings that keep JupyterLab's own prompts (news, autosave) out of the way."""
    settings = home / ".jupyter/lab/user-settings/@jupyterlab"
    for plugin, values in {"apputils-extension/notification": {"fetchNews": "false"}, **plugins}.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def run_script(script: str, *args: str, timeout: float = 360) -> tuple[subprocess.CompletedProcess, dict]:
    result = subprocess.run(["node", str(ROOT / "ui-tests" / script), *args], capture_output=True, text=True,
                            timeout=timeout, cwd=ROOT)
    return result, steps_of(result.stdout)


def start_lab(home: Path, module: str, *extra: str) -> ServerProcess:
    lab = ServerProcess(
        home, f"--AutoShutdown.idle_timeout={TIMEOUT_MINUTES}",
        f"--AutoShutdown.warning_minutes={WARNING_MINUTES}", "--AutoShutdown.max_check_interval=1",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        *extra, module=module,
    )
    for name in ("a.ipynb", "b.ipynb"):
        assert lab.request("PUT", f"api/contents/{name}",
                           json={"type": "notebook", "content": NOTEBOOK}).status_code in (200, 201)
    return lab


@pytest.fixture(scope="module", autouse=True)
def fresh_output():
    if OUTPUT.exists():
        shutil.rmtree(OUTPUT)
    OUTPUT.mkdir(parents=True)


@pytest.mark.timeout(420)
def test_jupyterlab_front_end_as_a_new_user_meets_it(home):
    quiet_lab_settings(home)
    lab = start_lab(home, "jupyterlab", "--LabApp.expose_app_in_browser=True")
    try:
        labextensions = lab.request("GET", "lab/api/extensions").json()
        assert any(ext["name"] == "jupyter-autoshutdown" and ext["enabled"] for ext in labextensions), \
            "the prebuilt front end is installed with the Python package"
        result, steps = run_script("e2e.mjs", lab.url, TOKEN, str(OUTPUT))
        assert result.returncode == 0 and "error" not in steps, (
            f"{result.stdout}\n{result.stderr}\n--- server log ---\n{lab.output()[-5000:]}")
        shown = {name: {k: v for k, v in step.items() if k != "screenshot"} for name, step in steps.items()}
        print(json.dumps(shown, indent=1))
        countdown = steps["countdown"]
        assert countdown["text"].startswith("Kernel stops in"), countdown
        assert (countdown["role"], countdown["tabIndex"], countdown["icon"]) == ("button", 0, 1), countdown
        assert countdown["label"].startswith("Auto-shutdown: This kernel stops at"), countdown
        # Other extensions get the status through the plugin's token.
        token = steps["token"]
        assert token["token"] == "jupyter-autoshutdown:IAutoShutdown" and token["provided"], token
        assert token["shutdownAt"], token
        # The Running sidebar shows the kernel by its notebook, with the time it stops and why.
        running = steps["running-sidebar"]
        assert re.search(r"a\.ipynb.*stops at \d\d:\d\d", running["text"]), running
        assert "unless it is used" in running["title"], running
        # Busy within 2 s of the cell starting; no countdown while it ran.
        assert steps["busy"]["seconds"] <= 2, steps["busy"]
        assert steps["busy-over"]["countdownDuringBusy"] is False
        # A background notebook is warned for by name; its Keep alive keeps that kernel only.
        warning = steps["background-warning"]
        assert "“b.ipynb”" in warning["text"] and "a.ipynb" in warning["currentTab"], warning
        kept = steps["kept-one"]
        assert kept["keep"]["keep_alive_until"] is None
        assert list(kept["keep"]["kernels"]) == [kept["b"]], kept
        # The panel lists kernels by notebook path, in the left sidebar.
        panel = steps["panel"]
        assert panel["inLeftArea"] and "a.ipynb" in panel["text"] and "b.ipynb" in panel["text"], panel
        # The form: an empty field never reaches the server; typing survives refreshes; 0 asks.
        empty = steps["empty-refused"]
        assert empty["refusal"] == "Enter the timeout in minutes.", empty
        assert empty["after"] == empty["before"], empty
        assert steps["typed-survives"]["value"] == "7" and steps["typed-survives"]["focused"]
        assert "Turn auto-shutdown off?" in steps["turn-off-asked"]["dialog"]
        assert steps["turn-off-asked"]["after"] == TIMEOUT_MINUTES
        assert "Set a 0.5-minute timeout?" in steps["tiny-asked"]["dialog"], steps["tiny-asked"]
        assert "30 seconds" in steps["tiny-asked"]["dialog"]
        assert steps["tiny-asked"]["after"] == TIMEOUT_MINUTES
        # The cull message: whole, not an error, with a restart that works.
        culled = steps["culled"]
        assert culled["length"] <= 140 and culled["restart"] == 1, culled
        assert "error" not in culled["className"], culled
        assert "a.ipynb" in culled["fullReason"] and "idle" in culled["fullReason"], culled
        assert steps["restarted"]["a"] is not None
        assert "Auto-shutdown" in steps["settings-editor"]["text"]
        for record in steps.values():
            if "screenshot" in record:
                assert Path(record["screenshot"]).stat().st_size > 10_000, record
        # The server side agrees: a.ipynb's first kernel was culled by auto-shutdown; b's was kept.
        log = lab.output()
        assert "auto-shutdown: shutting down kernel" in log and f"kernel {kept['b']} kept alive until" in log
        settings = lab.request("GET", "autoshutdown/api/settings").json()
        assert settings["idle_timeout_minutes"] == TIMEOUT_MINUTES
    finally:
        lab.stop()


@pytest.mark.timeout(300)
def test_notebook7_shows_the_countdown_and_opens_the_panel(home):
    lab = start_lab(home, "notebook")
    try:
        result, steps = run_script("notebook7.mjs", lab.url, TOKEN, str(OUTPUT))
        assert result.returncode == 0 and "error" not in steps, (
            f"{result.stdout}\n{result.stderr}\n--- server log ---\n{lab.output()[-5000:]}")
        print(json.dumps({name: {k: v for k, v in step.items() if k not in ("screenshot", "text")}
                          for name, step in steps.items()}))
        assert steps["n7-countdown"]["text"].startswith("Kernel stops in")
        assert steps["n7-busy"]["seconds"] <= 2, steps["n7-busy"]
        panel = steps["n7-panel"]
        assert panel["visible"] and panel["width"] > 150 and "a.ipynb" in panel["text"], panel
    finally:
        lab.stop()


# ---- an open tab that nobody uses must not keep the bill running ------------------------------

IDLE_TAB_MINUTES = 0.5  # T = 30 s
IDLE_TAB_SECONDS = IDLE_TAB_MINUTES * 60


def lab_with_marker_action(home: Path) -> tuple[ServerProcess, Path]:
    """`jupyter lab` whose app action (`command`) writes the time it ran to a marker file."""
    marker = home / "app-action-ran"
    quiet_lab_settings(home, **{"docmanager-extension/plugin": {"autosave": False}})
    (home / ".jupyter" / "jupyter_server_config.json").write_text(json.dumps({"AutoShutdown": {
        "app_action": "command",
        "app_command": [sys.executable, "-c",
                        "import sys, time; open(sys.argv[1], 'w').write(repr(time.time()))", str(marker)],
    }}))
    lab = ServerProcess(
        home, f"--AutoShutdown.idle_timeout={IDLE_TAB_MINUTES}", "--AutoShutdown.warning_minutes=0.1",
        "--AutoShutdown.max_check_interval=5", "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", module="jupyterlab",
    )
    assert lab.request("PUT", "api/contents/demo.ipynb",
                       json={"type": "notebook", "content": NOTEBOOK}).status_code in (200, 201)
    return lab, marker


def run_idle_tab(lab: ServerProcess, mode: str, seconds: float = 0) -> subprocess.Popen:
    return subprocess.Popen(
        ["node", str(ROOT / "ui-tests" / "idle-tab.mjs"), lab.url, TOKEN, "demo.ipynb", str(OUTPUT), mode,
         str(seconds)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )


def steps_of(stdout: str) -> dict:
    return {record["step"]: record for record in map(json.loads, filter(
        lambda line: line.startswith("{"), stdout.splitlines()))}


def app_status(lab: ServerProcess) -> dict:
    return lab.request("GET", "autoshutdown/api/status").json()["app"]


@pytest.mark.timeout(300)
def test_an_open_tab_nobody_uses_lets_the_app_action_run_on_time(home):
    lab, marker = lab_with_marker_action(home)
    script = None
    try:
        script = run_idle_tab(lab, "nobody")
        deadlines, kernel_seen = set(), False
        # The server's own view, from our status route (never activity), while the tab stays open:
        # every app deadline shown once the notebook's kernel has gone.
        while script.poll() is None and not marker.exists():
            status = lab.request("GET", "autoshutdown/api/status").json()
            kernel_seen = kernel_seen or bool(status["kernels"])
            app = status["app"]
            if kernel_seen and not status["kernels"] and app["action_at"] and not app["last_run_at"]:
                deadlines.add(app["action_at"])
            time.sleep(0.2)
        stdout, stderr = script.communicate(timeout=180)
        steps = steps_of(stdout)
        assert script.returncode == 0 and "error" not in steps, (
            f"{stdout}\n{stderr}\n--- server log ---\n{lab.output()[-5000:]}")
        assert steps["opened"]["visibility"] == "visible"
        assert steps["server-countdown"]["text"].startswith("Server stops in")
        # The kernel went about T after its last activity (the cell run).
        culls = re.findall(r"shutting down kernel \S+ \(python3\): idle for (\d+) s", lab.output())
        idle = [int(n) for n in culls]
        assert idle and IDLE_TAB_SECONDS <= idle[0] <= IDLE_TAB_SECONDS + 2, idle
        # One deadline, shown all along while the tab polled; the action ran within 2 s of it.
        assert len(deadlines) == 1, deadlines
        deadline = datetime.fromisoformat(deadlines.pop()).timestamp()
        lateness = float(marker.read_text()) - deadline
        print(f"app action {lateness:.3f} s after its deadline, tab open and polling")
        assert 0 <= lateness <= 2, lateness
        assert steps["action-ran"]["app"]["last_run_at"]
        assert steps["action-ran"]["text"].startswith("Server: 'command' ran at"), steps["action-ran"]
        for record in steps.values():
            if "screenshot" in record:
                assert Path(record["screenshot"]).stat().st_size > 10_000, record
        assert lab.process.poll() is None, "the command action stops nothing by itself"
    finally:
        if script is not None and script.poll() is None:
            script.kill()
            script.wait()
        lab.stop()


@pytest.mark.timeout(300)
def test_typing_in_a_cell_keeps_the_server_though_nothing_runs_or_saves(home):
    lab, marker = lab_with_marker_action(home)
    script = None
    typing_seconds = 2 * IDLE_TAB_SECONDS + 15
    try:
        started = time.time()
        script = run_idle_tab(lab, "typing", typing_seconds)
        stdout, stderr = script.communicate(timeout=typing_seconds + 150)
        steps = steps_of(stdout)
        assert script.returncode == 0 and "error" not in steps, (
            f"{stdout}\n{stderr}\n--- server log ---\n{lab.output()[-5000:]}")
        typed = steps["typed"]
        assert typed["typed"] >= typing_seconds // 10
        # Typing is no kernel activity: the kernel went after T; the server stayed for the person.
        assert typed["kernels"] == 0
        assert not marker.exists(), "the app action ran while someone was typing"
        assert time.time() - started > 2 * IDLE_TAB_SECONDS + 10
        app = app_status(lab)
        assert app["last_activity_source"] == "front end interaction", app
        assert app["last_run_at"] is None and app["action_at"] is not None
        saved = lab.request("GET", "api/contents/demo.ipynb").json()["content"]
        assert saved["cells"][0]["source"] == "x = 1", "nothing was saved"
    finally:
        if script is not None and script.poll() is None:
            script.kill()
            script.wait()
        lab.stop()


# ---- unsaved edits are saved before the app action (autosave off) ------------------------------

#: Made on the server in the test's config: refuses to save a notebook once "<name>.readonly" is
#: next to it on disk (as `chmod a-w` would for a user who is not root; CI runs as root).
REFUSING_CONTENTS = '''
import os
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web

class RefusingContentsManager(AsyncLargeFileManager):
    async def save(self, model, path=""):
        if os.path.exists(self._get_os_path(path) + ".readonly"):
            raise web.HTTPError(403, f"Permission denied: {path}")
        return await super().save(model, path)

c.ServerApp.contents_manager_class = RefusingContentsManager
'''
GRACE_MINUTES = 0.25  # 15 s


def lab_recording_the_notebook_at_the_action(home: Path) -> tuple[ServerProcess, Path]:
    """`jupyter lab` whose app action writes the time and the notebook's file as it is on disk."""
    marker = home / "app-action-ran"
    quiet_lab_settings(home, **{"docmanager-extension/plugin": {"autosave": False}})
    (home / ".jupyter").mkdir(parents=True, exist_ok=True)
    (home / ".jupyter" / "jupyter_server_config.py").write_text(REFUSING_CONTENTS)
    record = ("import json, sys, time; json.dump({'at': time.time(), 'notebook': open(sys.argv[2]).read()}, "
              "open(sys.argv[1], 'w'))")
    (home / ".jupyter" / "jupyter_server_config.json").write_text(json.dumps({"AutoShutdown": {
        "app_action": "command",
        "app_command": [sys.executable, "-c", record, str(marker), str(home / "demo.ipynb")],
        "unsaved_grace_minutes": GRACE_MINUTES,
    }}))
    lab = ServerProcess(
        home, f"--AutoShutdown.idle_timeout={IDLE_TAB_MINUTES}", "--AutoShutdown.warning_minutes=0.1",
        "--AutoShutdown.max_check_interval=5", "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", module="jupyterlab",
    )
    assert lab.request("PUT", "api/contents/demo.ipynb",
                       json={"type": "notebook", "content": NOTEBOOK}).status_code in (200, 201)
    return lab, marker


def finish_tab(script: subprocess.Popen, lab: ServerProcess) -> dict:
    """The steps of a tab script once it ends (killed if it does not); it must have succeeded."""
    try:
        stdout, stderr = script.communicate(timeout=180)
    finally:
        if script.poll() is None:
            script.kill()
            script.wait()
    steps = steps_of(stdout)
    assert script.returncode == 0 and "error" not in steps, (
        f"{stdout}\n{stderr}\n--- server log ---\n{lab.output()[-5000:]}")
    return steps


def run_until_the_action(lab: ServerProcess, marker: Path, mode: str) -> tuple[dict, set[str], dict]:
    """Run the tab in `mode`, noting every app deadline the server shows once the kernel has gone."""
    script = run_idle_tab(lab, mode)
    deadlines, kernel_seen = set(), False
    try:
        while script.poll() is None and not marker.exists():
            status = lab.request("GET", "autoshutdown/api/status").json()
            kernel_seen = kernel_seen or bool(status["kernels"])
            app = status["app"]
            if kernel_seen and not status["kernels"] and app["action_at"] and not app["last_run_at"]:
                deadlines.add(app["action_at"])
            time.sleep(0.2)
    except BaseException:
        script.kill()
        script.wait()
        raise
    return finish_tab(script, lab), deadlines, json.loads(marker.read_text())


@pytest.mark.timeout(300)
def test_an_edit_nobody_saved_is_on_disk_before_the_app_action_and_costs_no_time(home):
    lab, marker = lab_recording_the_notebook_at_the_action(home)
    try:
        steps, deadlines, recorded = run_until_the_action(lab, marker, "unsaved")
        assert "it will save “demo.ipynb” first" in steps["warned"]["text"], steps["warned"]
        assert "# edited, never saved by hand" in recorded["notebook"], "the edit was lost"
        # The save moved nothing: one deadline (the kernel's shutdown + T), met within 2 s.
        assert len(deadlines) == 1, deadlines
        lateness = recorded["at"] - datetime.fromisoformat(deadlines.pop()).timestamp()
        print(f"app action {lateness:.3f} s after its deadline, the page's edit saved before it")
        assert 0 <= lateness <= 2, lateness
        documents = steps["action-ran"]["documents"]
        assert documents["last_save"]["saved"] == ["demo.ipynb"], documents
        assert "a page saved demo.ipynb before the app action" in lab.output()
    finally:
        lab.stop()


@pytest.mark.timeout(300)
def test_a_notebook_that_cannot_be_saved_is_named_and_the_action_runs_after_the_grace(home):
    lab, marker = lab_recording_the_notebook_at_the_action(home)
    (home / "demo.ipynb.readonly").write_text("")  # made read-only on disk after the page opened it
    try:
        steps, deadlines, recorded = run_until_the_action(lab, marker, "unsavable")
        assert "“demo.ipynb” cannot be saved" in steps["named"]["text"], steps["named"]
        assert "# edited" not in recorded["notebook"]
        assert len(deadlines) == 1, deadlines
        waited = recorded["at"] - datetime.fromisoformat(deadlines.pop()).timestamp()
        print(f"app action {waited:.3f} s after its deadline, one notebook unsavable, "
              f"grace {GRACE_MINUTES * 60:g} s")
        assert GRACE_MINUTES * 60 <= waited <= GRACE_MINUTES * 60 + 5, waited
        assert steps["action-ran"]["documents"]["last_save"]["failed"][0]["path"] == "demo.ipynb"
        assert "not saved in time): demo.ipynb" in lab.output()
    finally:
        lab.stop()


@pytest.mark.timeout(240)
def test_the_panel_moves_and_resets_the_daily_stop_where_the_operator_allows_it(home):
    quiet_lab_settings(home)
    operator_time = (datetime.now() + timedelta(hours=12)).strftime("%H:%M")  # never due in the test
    lab = ServerProcess(
        home, f"--AutoShutdown.idle_timeout={IDLE_TAB_MINUTES * 10}",
        "--AutoShutdown.allow_user_daily_stop=True",
        f"--AutoShutdown.daily_stop_time={operator_time}", "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", module="jupyterlab",
    )
    try:
        assert lab.request("PUT", "api/contents/demo.ipynb",
                           json={"type": "notebook", "content": NOTEBOOK}).status_code in (200, 201)
        steps = finish_tab(run_idle_tab(lab, "daily-stop"), lab)
        user = steps["user-time"]
        assert f"{operator_time} server time (the operator's)" in user["shown"], user
        assert user["refused"], "an invalid time could be saved"
        assert user["daily_stop"]["time"] == "21:30" and user["daily_stop"]["set_by"] == "user", user
        assert "Daily stop: 21:30 server time (set by a user)" in user["tooltip"], user
        reset = steps["reset"]["daily_stop"]
        assert reset["time"] == operator_time and reset["set_by"] == "operator", reset
    finally:
        lab.stop()
