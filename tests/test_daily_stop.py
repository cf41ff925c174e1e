"""The daily stop time against a real server: idle kernels go at the stop time, busy ones stay."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from helpers import KernelSession, api, kernel_gone, start_extension, start_kernel, wait_for
from server_process import ServerProcess
from tornado.httpclient import HTTPClientError

from jupyter_autoshutdown.core.settings import Limits, SettingsStore, StateFile

STOP_IN_SECONDS = 6.0


@pytest.fixture
def stop_at() -> datetime:
    # Whole seconds: the trait takes HH:MM:SS.
    return (datetime.now(timezone.utc) + timedelta(seconds=STOP_IN_SECONDS)).replace(microsecond=0)


@pytest.fixture
def autoshutdown_config(request, stop_at):
    # An hour's timeout: only the daily stop can shut anything down within this test.
    if getattr(request, "param", None) == "app":
        return {"idle_timeout": 60, "daily_stop_time": stop_at.strftime("%H:%M:%S"),
                "daily_stop_timezone": "UTC", "max_check_interval": 0.5, "warning_minutes": 0,
                "app_action": "actions_for_tests:RecordingAction"}
    if hasattr(request, "param"):
        return request.param
    return {"idle_timeout": 60, "daily_stop_time": stop_at.strftime("%H:%M:%S"),
            "daily_stop_timezone": "UTC", "max_check_interval": 0.5}


async def test_daily_stop_shuts_down_idle_kernels_at_the_stop_time_and_spares_busy_ones(
    jp_serverapp, jp_fetch, jp_ws_fetch, stop_at
):
    await start_extension(jp_serverapp)
    idle_id = await start_kernel(jp_fetch)
    busy_id = await start_kernel(jp_fetch)
    busy = await KernelSession.connect(jp_ws_fetch, busy_id)
    try:
        msg_id = await busy.send_execute(f"import time; time.sleep({STOP_IN_SECONDS + 4})")
        status = await api(jp_fetch, "autoshutdown", "api", "status")
        assert status["next_daily_stop"] == stop_at.isoformat()
        row = next(row for row in status["kernels"] if row["id"] == idle_id)
        assert row["shutdown_at"] == stop_at.isoformat() and "daily stop" in row["reason"], row

        await wait_for(lambda: kernel_gone(jp_serverapp, idle_id), timeout=STOP_IN_SECONDS + 10)
        assert datetime.now(timezone.utc) >= stop_at, "not before the stop time"
        assert not kernel_gone(jp_serverapp, busy_id), "a busy kernel is never shut down by the stop"
        await busy.wait_idle(msg_id)
    finally:
        busy.close()
    # Its work finished after the stop time: the next stop (tomorrow) or the timeout applies.
    status = await api(jp_fetch, "autoshutdown", "api", "status")
    row = next(row for row in status["kernels"] if row["id"] == busy_id)
    assert datetime.fromisoformat(row["shutdown_at"]) > stop_at + timedelta(hours=0.9), row


@pytest.mark.parametrize("autoshutdown_config", ["app"], indirect=True)
async def test_the_daily_stop_stops_the_app_too_once_its_idle_kernels_are_gone(
    jp_serverapp, jp_fetch, stop_at
):
    """An hour's timeout, one idle kernel: at the stop the kernel goes, and the app action runs
    right after it, not a whole timeout later (the stop's own cull is not activity)."""
    from actions_for_tests import RecordingAction

    RecordingAction.calls.clear()
    await start_extension(jp_serverapp)
    kernel_id = await start_kernel(jp_fetch)
    await wait_for(lambda: kernel_gone(jp_serverapp, kernel_id), timeout=STOP_IN_SECONDS + 10,
                   what="the cull")
    await wait_for(lambda: RecordingAction.calls, timeout=10, what="the app action")
    assert stop_at <= RecordingAction.calls[0] <= stop_at + timedelta(seconds=5), RecordingAction.calls
    status = await api(jp_fetch, "autoshutdown", "api", "status")
    assert status["app"]["last_run_at"] is not None


# ---- the user's daily stop, where the operator allows it (allow_user_daily_stop) ---------------

async def test_a_user_may_not_move_the_operators_daily_stop_by_default(jp_serverapp, jp_fetch, stop_at):
    await start_extension(jp_serverapp)
    for method, kwargs in (("PATCH", {"body": {"daily_stop_time": "23:00"}}),
                           ("PATCH", {"body": {"daily_stop_timezone": "Europe/Berlin"}}),
                           ("DELETE", {"params": {"field": "daily_stop"}})):
        with pytest.raises(HTTPClientError) as refused:
            await api(jp_fetch, "autoshutdown", "api", "settings", method=method, **kwargs)
        assert refused.value.code == 403
        assert "allow_user_daily_stop" in json.loads(refused.value.response.body)["message"]
    settings = await api(jp_fetch, "autoshutdown", "api", "settings")
    assert settings["daily_stop"] == {
        "time": stop_at.strftime("%H:%M:%S"), "timezone": "UTC",
        "label": f"{stop_at.strftime('%H:%M:%S')} UTC", "set_by": "operator",
        "operator_time": stop_at.strftime("%H:%M:%S"), "operator_timezone": "UTC",
        "user_may_change": False,
    }
    assert settings["allow_user_daily_stop"] is False


USER_STOP_CONFIG = {"idle_timeout": 60, "daily_stop_time": "03:00", "allow_user_daily_stop": True,
                    "max_check_interval": 0.5}


USER_STOP = pytest.mark.parametrize("autoshutdown_config", [USER_STOP_CONFIG], indirect=True)


@USER_STOP
@pytest.mark.parametrize(("changes", "reason"), [
    ({"daily_stop_time": "25:00"}, "must look like 22:00"),
    ({"daily_stop_time": 2200}, "must be a string"),
    ({"daily_stop_timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"daily_stop_time": "22:00", "daily_stop_timezone": "Nowhere"}, "unknown time zone"),
])
async def test_an_invalid_user_daily_stop_is_400_and_changes_nothing(
    jp_serverapp, jp_fetch, changes, reason
):
    await start_extension(jp_serverapp)
    with pytest.raises(HTTPClientError) as refused:
        await api(jp_fetch, "autoshutdown", "api", "settings", method="PATCH", body=changes)
    assert refused.value.code == 400
    assert reason in json.loads(refused.value.response.body)["message"]
    settings = await api(jp_fetch, "autoshutdown", "api", "settings")
    assert settings["daily_stop"]["time"] == "03:00" and settings["daily_stop"]["set_by"] == "operator"


@pytest.mark.parametrize("autoshutdown_config", [{**USER_STOP_CONFIG, "daily_stop_time": ""}], indirect=True)
@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "Europe/Berlin\x00", "../../etc/passwd"])
async def test_a_time_zone_is_checked_even_without_a_stop_time(jp_serverapp, jp_fetch, state_path, zone):
    await start_extension(jp_serverapp)
    with pytest.raises(HTTPClientError) as refused:
        await api(jp_fetch, "autoshutdown", "api", "settings", method="PATCH",
                  body={"daily_stop_timezone": zone})
    assert refused.value.code == 400
    assert "time zone" in json.loads(refused.value.response.body)["message"]
    settings = await api(jp_fetch, "autoshutdown", "api", "settings")
    assert settings["daily_stop"]["timezone"] is None
    assert not state_path.exists() or zone not in state_path.read_text()


@USER_STOP
async def test_the_user_daily_stop_fires_at_the_users_time_persists_and_resets(
    jp_serverapp, jp_fetch, state_path
):
    # The operator's stop is far away (03:00 local time, an hour's timeout); the user's in seconds.
    extension = await start_extension(jp_serverapp)
    kernel_id = await start_kernel(jp_fetch)
    user_at = (datetime.now(timezone.utc) + timedelta(seconds=STOP_IN_SECONDS)).replace(microsecond=0)
    settings = await api(jp_fetch, "autoshutdown", "api", "settings", method="PATCH",
                         body={"daily_stop_time": user_at.strftime("%H:%M:%S"), "daily_stop_timezone": "UTC"})
    assert settings["persisted"] is True
    assert settings["daily_stop"]["set_by"] == "user" and settings["daily_stop"]["operator_time"] == "03:00"
    status = await api(jp_fetch, "autoshutdown", "api", "status")
    assert status["next_daily_stop"] == user_at.isoformat()
    await wait_for(lambda: kernel_gone(jp_serverapp, kernel_id), timeout=STOP_IN_SECONDS + 10)
    assert datetime.now(timezone.utc) >= user_at

    # Saved for the next start, with who set it.
    saved = json.loads(state_path.read_text())["settings"]
    assert saved["daily_stop_time"] == user_at.strftime("%H:%M:%S") and saved["daily_stop_timezone"] == "UTC"
    restarted = SettingsStore(extension.configured_settings(), StateFile(state_path, extension.log),
                              extension.log, extension.limits())
    assert restarted.current.daily_stop_time == user_at.strftime("%H:%M:%S")
    assert restarted.set_by("daily_stop_time") == "user"

    # "No daily stop" is a user's choice too; resetting brings back the operator's time.
    settings = await api(jp_fetch, "autoshutdown", "api", "settings", method="PATCH",
                         body={"daily_stop_time": ""})
    assert settings["daily_stop"]["time"] is None and settings["daily_stop"]["set_by"] == "user"
    assert (await api(jp_fetch, "autoshutdown", "api", "status"))["next_daily_stop"] is None
    settings = await api(jp_fetch, "autoshutdown", "api", "settings", method="DELETE",
                         params={"field": "daily_stop"})
    assert settings["daily_stop"]["time"] == "03:00" and settings["daily_stop"]["set_by"] == "operator"
    assert settings["daily_stop"]["timezone"] is None
    assert "daily_stop_time" not in json.loads(state_path.read_text())["settings"]
    # Once the operator disallows it, a saved user time is ignored at start.
    json_state = json.loads(state_path.read_text())
    json_state["settings"]["daily_stop_time"] = "04:00"
    state_path.write_text(json.dumps(json_state))
    disallowed = SettingsStore(extension.configured_settings(), StateFile(state_path, extension.log),
                               extension.log, Limits())
    assert disallowed.current.daily_stop_time == "03:00"


def posix_rule_changing_at(change: datetime) -> str:
    """A TZ rule: UTC+0 ("XST") until `change`, then daylight saving time UTC+1 ("XDT") for a day."""
    end = change + timedelta(days=1)
    return (f"XST0XDT-1,{change.timetuple().tm_yday - 1}/{change:%H:%M:%S},"
            f"{end.timetuple().tm_yday - 1}/{end:%H:%M:%S}")


def test_a_daily_stop_in_the_machines_zone_follows_a_dst_change_during_the_run(home):
    """The machine's zone ("") is asked at each instant, not fixed at start: with TZ set to a rule
    that moves the clocks an hour forward 8 s after the server starts, a stop at a local time after
    the change fires then, not an hour late."""
    import time

    import requests

    started = datetime.now(timezone.utc).replace(microsecond=0)
    change = started + timedelta(seconds=8)
    stop = started + timedelta(seconds=16)
    local_stop = (stop + timedelta(hours=1)).strftime("%H:%M:%S")  # the wall clock in DST
    server = ServerProcess(
        home, "--AutoShutdown.idle_timeout=60", f"--AutoShutdown.daily_stop_time={local_stop}",
        "--AutoShutdown.max_check_interval=0.5", env={"TZ": posix_rule_changing_at(change)},
    )
    try:
        kernel = server.request("POST", "api/kernels", json={"name": "python3"}).json()
        status = server.request("GET", "autoshutdown/api/status").json()
        assert datetime.fromisoformat(status["next_daily_stop"]) == stop, status["next_daily_stop"]
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            try:
                if kernel["id"] not in {k["id"] for k in server.request("GET", "api/kernels").json()}:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError(f"the kernel was not culled at the stop:\n{server.output()[-3000:]}")
        culled_at = datetime.now(timezone.utc)
        assert stop <= culled_at <= stop + timedelta(seconds=10), (stop, culled_at)
    finally:
        server.stop()
