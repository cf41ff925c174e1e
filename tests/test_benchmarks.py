"""The benchmark code itself still runs (tiny sizes); the figures are not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REQUIRED = [
    "lateness_p95_seconds", "builtin_lateness_p95_seconds", "mass_cull_seconds",
    "builtin_mass_cull_seconds", "mass_cull_speedup_vs_builtin", "single_shutdown_seconds",
    "pass_cost_us_per_resource", "pass_floor_us_per_resource", "max_loop_block_ms",
    "idle_cpu_ratio", "rss_overhead_mb", "cpu_count", "pass_cost_vs_floor_p25", "pass_cost_vs_floor_p75",
    "app_action_lateness_open_tab_seconds", "iopub_storm_lost_idle_seconds", "iopub_storm_server_cpu_ratio",
    "sources_pass_cpu_added_us", "login_scan_ms",
]


@pytest.mark.timeout(300)
def test_benchmark_suite_runs_and_writes_every_figure(tmp_path):
    output = tmp_path / "latest.json"
    result = subprocess.run(
        [sys.executable, REPO / "benchmarks" / "run.py", "--tiny", "--output", output],
        capture_output=True, text=True, timeout=280,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(output.read_text())
    missing = [key for key in REQUIRED if key not in figures]
    assert not missing
    assert all(isinstance(figures[key], (int, float)) for key in REQUIRED)
    assert "mass cull" in result.stdout and "pass cost per resource" in result.stdout
