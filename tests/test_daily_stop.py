"""The daily stop time against a real server: idle kernels go at the stop time, busy ones stay."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from helpers import KernelSession, api, kernel_gone, start_extension, start_kernel, wait_for

STOP_IN_SECONDS = 6.0


@pytest.fixture
def stop_at() -> datetime:
    # Whole seconds: the trait takes HH:MM:SS.
    return (datetime.now(timezone.utc) + timedelta(seconds=STOP_IN_SECONDS)).replace(microsecond=0)


@pytest.fixture
def autoshutdown_config(stop_at):
    # An hour's timeout: only the daily stop can shut anything down within this test.
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
