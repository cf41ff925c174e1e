"""Operator limits: bounds on the timeout users choose, switching off, opting out.

Real servers: in process (pytest-jupyter) for the routes, as a subprocess for the scripts and
for restarts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers import KernelSession, api, kernel_gone, start_extension, start_kernel, wait_for
from server_process import ServerProcess, isolated_env
from tornado.httpclient import HTTPClientError

from jupyter_autoshutdown.core.settings import Limits, Settings, SettingsError, SettingsStore, StateFile

REPO = Path(__file__).resolve().parent.parent
SET_TIME_INTERVAL = REPO / "scripts" / "set-time-interval.sh"
SETTINGS = ("autoshutdown", "api", "settings")
STATUS = ("autoshutdown", "api", "status")
IDLE_CHECKER = ("sagemaker-studio-autoshutdown", "idle_checker")
COMPAT_SETTINGS = ("sagemaker-studio-autoshutdown", "settings")

BOUNDED = {"min_idle_timeout": 10.0, "max_idle_timeout": 240.0, "allow_disable": False}


async def refused(jp_fetch, *parts, method, body) -> str:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(*parts, method=method, body=json.dumps(body))
    assert info.value.code == 400, info.value
    return json.loads(info.value.response.body)["message"]


@pytest.mark.parametrize("autoshutdown_config", [BOUNDED])
async def test_settings_show_the_limits(jp_serverapp, jp_fetch):
    await start_extension(jp_serverapp)
    settings = await api(jp_fetch, *SETTINGS)
    assert settings["min_idle_timeout_minutes"] == 10
    assert settings["max_idle_timeout_minutes"] == 240
    assert settings["allow_disable"] is False
    assert settings["allow_user_exemptions"] is True


async def test_defaults_bound_nothing(jp_serverapp, jp_fetch):
    await start_extension(jp_serverapp)
    settings = await api(jp_fetch, *SETTINGS)
    assert (settings["min_idle_timeout_minutes"], settings["max_idle_timeout_minutes"]) == (0, 0)
    assert settings["allow_disable"] is True and settings["allow_user_exemptions"] is True
    await api(jp_fetch, *SETTINGS, method="PATCH", body={"idle_timeout_minutes": 0})
    assert (await api(jp_fetch, *SETTINGS))["idle_timeout_minutes"] == 0


OUT_OF_BOUNDS = [
    (SETTINGS, "PATCH", {"idle_timeout_minutes": 5}, "below this server's minimum"),
    (SETTINGS, "PATCH", {"idle_timeout_minutes": 241}, "above this server's maximum"),
    (SETTINGS, "PATCH", {"idle_timeout_minutes": 0}, "allow_disable"),
    (SETTINGS, "PATCH", {"idle_timeout_minutes": 500, "keep_terminals": True}, "maximum"),
    (IDLE_CHECKER, "POST", {"idle_time": 5}, "minimum"),
    (IDLE_CHECKER, "POST", {"idle_time": "300"}, "maximum"),
    (IDLE_CHECKER, "POST", {"idle_time": 0, "keep_terminals": True}, "allow_disable"),
    (COMPAT_SETTINGS, "POST", {"idle_time": 9}, "minimum"),
    (COMPAT_SETTINGS, "POST", {"idle_time": 0}, "allow_disable"),
]


@pytest.mark.parametrize("autoshutdown_config", [BOUNDED])
@pytest.mark.parametrize(("route", "method", "body", "why"), OUT_OF_BOUNDS,
                         ids=[f"{r[-1]}-{b}" for r, _, b, _ in OUT_OF_BOUNDS])
async def test_every_route_refuses_values_outside_the_bounds_and_changes_nothing(
    jp_serverapp, jp_fetch, state_path, route, method, body, why
):
    extension = await start_extension(jp_serverapp)
    before = extension.store.current
    message = await refused(jp_fetch, *route, method=method, body=body)
    assert why in message
    assert "allowed: from 10 to 240 minutes, not 0" in message  # names the bounds
    assert extension.store.current == before
    assert not state_path.exists()
    # Inside the bounds the same routes work.
    await api(jp_fetch, *SETTINGS, method="PATCH", body={"idle_timeout_minutes": 10})
    await api(jp_fetch, *IDLE_CHECKER, method="POST", body={"idle_time": 240})
    assert extension.store.current.idle_timeout_minutes == 240


@pytest.mark.parametrize("autoshutdown_config", [{"max_idle_timeout": 60.0}])
async def test_changing_other_fields_is_not_blocked_by_the_bounds(jp_serverapp, jp_fetch):
    # The static 120 is clamped to 60 at start; other fields stay freely settable.
    extension = await start_extension(jp_serverapp)
    assert extension.store.current.idle_timeout_minutes == 60
    await api(jp_fetch, *SETTINGS, method="PATCH", body={"keep_terminals": True})
    assert extension.store.current.keep_terminals is True


@pytest.mark.parametrize("autoshutdown_config", [{**BOUNDED, "idle_timeout": 1000.0}])
async def test_static_timeout_above_the_maximum_is_clamped_and_logged(capfd, jp_serverapp, jp_fetch):
    await start_extension(jp_serverapp)
    assert (await api(jp_fetch, *SETTINGS))["idle_timeout_minutes"] == 240
    # The extension logs to the server's stderr while the server fixture is set up.
    logged = capfd.readouterr().err.splitlines()
    clamps = [line for line in logged if "outside the operator's limits" in line]
    assert len(clamps) == 1, clamps
    assert clamps[0].endswith(
        "auto-shutdown: static idle_timeout 1000 minutes is outside the operator's limits; "
        "using 240 minutes (max_idle_timeout 240)"
    )


def test_clamping_rules():
    limits = Limits(min_idle_timeout_minutes=10, max_idle_timeout_minutes=240, allow_disable=False)
    assert limits.clamp(5, 120) == (10, "min_idle_timeout 10")
    assert limits.clamp(300, 120) == (240, "max_idle_timeout 240")
    assert limits.clamp(60, 120) == (60, "")
    assert limits.clamp(0, 500) == (240, "allow_disable")  # the fallback, itself clamped
    assert limits.clamp(0, 0) == (0, "")  # the operator's own static 0 stays off
    assert Limits().clamp(0, 120) == (0, "")
    assert Limits(max_idle_timeout_minutes=30).allowed_range() == "at most 30 minutes, or 0 (off)"


def test_the_state_file_records_the_static_value_not_the_clamped_one(tmp_path, caplog):
    import logging

    log = logging.getLogger("test")
    path = tmp_path / "state.json"
    limits = Limits(max_idle_timeout_minutes=60)
    store = SettingsStore(Settings(idle_timeout_minutes=120), StateFile(path, log), log, limits)
    assert store.current.idle_timeout_minutes == 60
    with pytest.raises(SettingsError, match="maximum"):
        store.apply({"idle_timeout_minutes": 61})
    # Loosening the bounds later is not a change of the static config: the runtime value stays.
    store.apply({"idle_timeout_minutes": 45})
    StateFile(path, log).write({
        "settings": store.current.runtime_values(), "config": store.static.runtime_values(),
    })
    loosened = SettingsStore(Settings(idle_timeout_minutes=120), StateFile(path, log), log, Limits())
    assert loosened.current.idle_timeout_minutes == 45


# --- scripts and restarts: a real server process --------------------------------------------


def set_time_interval(home, *args):
    import subprocess

    env = {**isolated_env(home), "AUTOSHUTDOWN_PYTHON": sys.executable}
    return subprocess.run([str(SET_TIME_INTERVAL), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.fixture
def servers():
    """Server processes a test starts; all stopped when it ends, passed or failed."""
    started: list[ServerProcess] = []
    yield started
    for process in started:
        process.stop()


def limit_args(**limits) -> list[str]:
    return [f"--AutoShutdown.{name}={value}" for name, value in limits.items()]


def test_set_time_interval_is_refused_outside_the_bounds(home, servers):
    server = ServerProcess(home, *limit_args(min_idle_timeout=10, max_idle_timeout=60, allow_disable=False))
    servers.append(server)
    for minutes in (5, 61, 0):
        result = set_time_interval(home, minutes)
        assert result.returncode == 6, (minutes, result.stdout, result.stderr)
        assert "allowed: from 10 to 60 minutes, not 0" in result.stderr
    assert server.request("GET", "autoshutdown/api/settings").json()["idle_timeout_minutes"] == 60
    assert set_time_interval(home, 30).returncode == 0


def test_saved_values_are_clamped_after_the_operator_tightens_the_bounds(home, servers):
    first = ServerProcess(home)
    servers.append(first)
    assert set_time_interval(home, 500, "--keep-terminals").returncode == 0
    first.stop()

    tightened = ServerProcess(home, *limit_args(max_idle_timeout=240))
    servers.append(tightened)
    settings = tightened.request("GET", "autoshutdown/api/settings").json()
    assert settings["idle_timeout_minutes"] == 240
    assert settings["keep_terminals"] is True  # the rest of the saved change still applies
    clamp_lines = [line for line in tightened.output().splitlines() if "operator's limits" in line]
    assert len(clamp_lines) == 1, clamp_lines
    assert "saved runtime idle_timeout 500 minutes" in clamp_lines[0]
    assert "using 240 minutes (max_idle_timeout 240)" in clamp_lines[0]
    # Turned off at run time while allowed; no longer allowed: the static timeout applies.
    assert set_time_interval(home, 0).returncode == 0
    tightened.stop()

    no_disable = ServerProcess(home, *limit_args(allow_disable=False))
    servers.append(no_disable)
    assert no_disable.request("GET", "autoshutdown/api/settings").json()["idle_timeout_minutes"] == 120
    assert "saved runtime idle_timeout 0 minutes" in no_disable.output()


# --- opting out -------------------------------------------------------------------------------

TIMEOUT_SECONDS = 3.0


@pytest.mark.parametrize("autoshutdown_config", [{
    "idle_timeout": TIMEOUT_SECONDS / 60, "max_check_interval": 0.5, "allow_user_exemptions": False,
}])
async def test_opt_out_is_refused_and_the_kernel_culled_with_the_reason_shown(
    jp_serverapp, jp_fetch, jp_ws_fetch
):
    await start_extension(jp_serverapp)
    kernel_id = await start_kernel(jp_fetch)
    session = await KernelSession.connect(jp_ws_fetch, kernel_id)
    try:
        await session.execute("import jupyter_autoshutdown; jupyter_autoshutdown.keep_this_kernel()")

        async def refusal_shown():
            status = await api(jp_fetch, *STATUS)
            row = next((r for r in status["kernels"] if r["id"] == kernel_id), None)
            return row is not None and row.get("opt_out_refused") and row

        row = await wait_for(refusal_shown, timeout=20, what="status naming the refused opt-out")
        assert "allow_user_exemptions is false" in row["reason"]
        assert row["exempt"] is False and row["shutdown_at"] is not None
    finally:
        session.close()
    await wait_for(lambda: kernel_gone(jp_serverapp, kernel_id), timeout=20, what="the cull")


@pytest.mark.parametrize("autoshutdown_config", [{"min_idle_timeout": 300.0, "max_idle_timeout": 60.0}])
async def test_minimum_above_maximum_uses_the_maximum_for_both(jp_serverapp, jp_fetch):
    await start_extension(jp_serverapp)
    settings = await api(jp_fetch, *SETTINGS)
    assert settings["min_idle_timeout_minutes"] == settings["max_idle_timeout_minutes"] == 60
    assert settings["idle_timeout_minutes"] == 60
