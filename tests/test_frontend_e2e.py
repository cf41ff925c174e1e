"""The JupyterLab front end in a real browser against a real `jupyter lab` with a short timeout.

Headless Chromium from Debian's packages, driven by playwright-core (ui-tests/e2e.mjs). Screenshots
of each step land in test-output/e2e/ (CI keeps that folder). Without Node, the npm packages or
Chromium the test skips with the reason; in CI (CI set) it fails instead, so it never passes
silently.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from server_process import TOKEN, ServerProcess

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "test-output" / "e2e"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MINUTES = 0.75  # 45 s: long enough to look, short enough to wait for
WARNING_MINUTES = 0.25  # the warning comes 15 s before


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


@pytest.mark.timeout(400)
def test_countdown_warning_keep_alive_panel_and_cull_message_in_a_real_browser(home):
    # No "get Jupyter news?" prompt over the toasts in the screenshots.
    news = home / ".jupyter/lab/user-settings/@jupyterlab/apputils-extension/notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false"}')
    lab = ServerProcess(
        home, f"--AutoShutdown.idle_timeout={TIMEOUT_MINUTES}",
        f"--AutoShutdown.warning_minutes={WARNING_MINUTES}", "--AutoShutdown.max_check_interval=1",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        module="jupyterlab",
    )
    try:
        labextensions = lab.request("GET", "lab/api/extensions").json()
        assert any(ext["name"] == "jupyter-autoshutdown" and ext["enabled"] for ext in labextensions), \
            "the prebuilt front end is installed with the Python package"
        assert lab.request("PUT", "api/contents/demo.ipynb",
                           json={"type": "notebook", "content": NOTEBOOK}).status_code in (200, 201)
        if OUTPUT.exists():
            shutil.rmtree(OUTPUT)
        result = subprocess.run(
            ["node", str(ROOT / "ui-tests" / "e2e.mjs"), lab.url, TOKEN, "demo.ipynb", str(OUTPUT)],
            capture_output=True, text=True, timeout=360, cwd=ROOT,
        )
        steps = {}
        for line in result.stdout.splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                steps[record["step"]] = record
        assert result.returncode == 0 and "error" not in steps, (
            f"{result.stdout}\n{result.stderr}\n--- server log ---\n{lab.output()[-5000:]}")
        assert steps["countdown"]["text"].startswith("Shuts down in")
        assert "Auto-shutdown will shut down this kernel in" in steps["warning"]["text"]
        assert steps["kept-alive"]["text"].startswith("Kept alive until")
        assert steps["panel"]["kernels"] and all(
            kernel_id in steps["panel"]["text"] for kernel_id in steps["panel"]["kernels"])
        assert "Auto-shutdown shut this notebook's kernel down" in steps["culled"]["text"]
        for record in steps.values():
            assert Path(record["screenshot"]).stat().st_size > 10_000, record
        # The server side agrees: the kernel was culled by auto-shutdown, after the keep-alive.
        assert lab.request("GET", "api/kernels").json() == []
        log = lab.output()
        assert "auto-shutdown: kept alive until" in log and "auto-shutdown: shutting down kernel" in log
    finally:
        lab.stop()
