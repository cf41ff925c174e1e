"""Daily stop arithmetic (time zones, DST) and the utilization sampler's logic on real processes."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from jupyter_autoshutdown.core.schedule import ScheduleError, parse_stop_time, parse_zone, stops_around
from jupyter_autoshutdown.observe.utilization import UtilizationSampler

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(("text", "expected"), [("22:00", (22, 0, 0)), ("7:05:09", (7, 5, 9)), ("", None)])
def test_stop_time_parses(text, expected):
    parsed = parse_stop_time(text)
    assert (parsed.hour, parsed.minute, parsed.second) == expected if expected else parsed is None


@pytest.mark.parametrize("text", ["24:00", "22", "10pm", "22:60", "-1:00"])
def test_bad_stop_time_is_rejected_with_the_expected_form(text):
    with pytest.raises(ScheduleError, match="22:00"):
        parse_stop_time(text)


def test_unknown_time_zone_is_rejected():
    with pytest.raises(ScheduleError, match="unknown time zone"):
        parse_zone("Mars/Olympus_Mons")


@pytest.mark.parametrize("now", [
    datetime(2026, 3, 29, 12, 0, tzinfo=timezone.utc),  # the day Berlin moves to summer time
    datetime(2026, 10, 25, 12, 0, tzinfo=timezone.utc),  # and back to winter time
    datetime(2026, 7, 1, 20, 30, tzinfo=timezone.utc),  # 22:30 in Berlin: after today's stop
])
def test_daily_stop_stays_at_the_same_local_time_across_dst(now):
    last, following = stops_around(parse_stop_time("22:00"), BERLIN, now)
    assert last <= now < following
    for instant in (last, following):
        local = instant.astimezone(BERLIN)
        assert (local.hour, local.minute) == (22, 0)
    assert (following.astimezone(BERLIN).date() - last.astimezone(BERLIN).date()).days == 1


def test_sampler_counts_cpu_of_the_whole_process_tree_and_gpu_from_its_reader():
    # A parent that idles and a child that burns CPU: the tree is active, via the child.
    parent = subprocess.Popen([sys.executable, "-c",
                               "import subprocess, sys, time\n"
                               "subprocess.Popen([sys.executable, '-c', 'while True: pass'])\n"
                               "time.sleep(60)"])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gpu_busy: dict[int, float] = {}
    sampler = UtilizationSampler(cpu_threshold_percent=20, gpu_threshold_percent=10, window_seconds=0.5,
                                 gpu_reader=lambda: gpu_busy)
    try:
        import psutil

        # The parent's own start-up uses CPU too: sample once its child is there (a loaded
        # machine starts Python slowly, and the tree was then seen active via the parent alone).
        started = time.monotonic() + 20
        while not psutil.Process(parent.pid).children() and time.monotonic() < started:
            time.sleep(0.05)
        now = datetime.now(timezone.utc)
        pids = {"burning": parent.pid, "idle": idle.pid}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
                "burning" in sampler.active_at and sampler.usage["burning"].processes == 2):
            sampler.sample(pids, now, time.monotonic())
            time.sleep(0.1)
        assert "burning" in sampler.active_at, sampler.usage
        assert sampler.usage["burning"].processes == 2 and sampler.usage["burning"].cpu_percent > 20
        assert "idle" not in sampler.active_at and sampler.usage["idle"].cpu_percent < 20
        gpu_busy[idle.pid] = 80.0  # what NVML would report for a process using the GPU
        sampler.sample(pids, now, time.monotonic())
        assert "idle" in sampler.active_at and sampler.usage["idle"].gpu_percent == 80.0
        sampler.sample({"idle": idle.pid}, now, time.monotonic())
        assert set(sampler.usage) == {"idle"}, "gone resources are forgotten"
    finally:
        import psutil

        for process in psutil.Process(parent.pid).children(recursive=True):
            process.kill()
        parent.kill()
        idle.kill()
        parent.wait()
        idle.wait()
