"""Benchmarks: jupyter_autoshutdown side by side with jupyter_server's built-in culler.

    python benchmarks/run.py            # full run (about 10 minutes: includes the built-in
                                        # culler at its default 300 s interval)
    python benchmarks/run.py --quick    # under 3 minutes on 2 cores
    python benchmarks/run.py --tiny     # seconds; only proves the code runs (used by the tests)

Prints a table and writes benchmarks/results/latest.json. Method: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

from jupyter_autoshutdown.act.monitor import Monitor
from jupyter_autoshutdown.actions import NoAction
from jupyter_autoshutdown.core.settings import Settings, SettingsStore
from jupyter_autoshutdown.observe.sources import HOOK_SOURCE_NAME, LOGIN_SCAN_SECONDS, read_login_activity
from jupyter_autoshutdown.serve.service import ServiceConfig, build_service

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
LOG = logging.getLogger("benchmark")
UTC = timezone.utc


@dataclass(frozen=True)
class Sizes:
    lateness_kernels: int
    stagger_seconds: float
    timeout_seconds: int
    builtin_default_interval: bool
    mass_kernels: int
    pass_kernels: int
    pass_terminals: int
    passes: int
    idle_window_seconds: float
    #: The app action under an open tab's polling: timeout; whether to run jupyter_server's own.
    open_tab_timeout_seconds: float
    open_tab_builtin: bool
    #: Output storms: cells, and lines printed (flushed) by each.
    storms: int = 10
    storm_lines: int = 20_000


SIZES = {
    "full": Sizes(16, 0.35, 5, True, 32, 10_000, 1_000, 60, 120.0, 10.0, True),
    "quick": Sizes(8, 0.35, 5, False, 32, 10_000, 1_000, 40, 20.0, 10.0, True, 5),
    "tiny": Sizes(2, 0.2, 2, False, 3, 200, 20, 5, 1.0, 3.0, False, 2, 2_000),
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def our_monitor(kernel_manager: Any, timeout_seconds: float, terminal_manager: Any = None,
                settings: dict[str, Any] | None = None, **config: Any) -> Monitor:
    """Our monitor on a kernel manager, with the extension's default options (`config`: others;
    `settings`: the tornado settings of a real server, where a figure needs them)."""
    started = utcnow()
    web_app = SimpleNamespace(last_activity=lambda: started)
    if settings is not None:
        web_app.settings = settings
    serverapp = SimpleNamespace(kernel_manager=kernel_manager, web_app=web_app, base_url="/")
    store = SettingsStore(
        Settings(idle_timeout_minutes=timeout_seconds / 60, starting_timeout_minutes=0), None, LOG
    )
    return build_service(ServiceConfig(action=NoAction(), **config), serverapp=serverapp, store=store,
                         log=LOG, terminal_manager=lambda: terminal_manager).monitor


async def start_kernels(kernel_manager: Any, count: int, stagger: float = 0.0) -> list[str]:
    ids = []
    for _ in range(count):
        ids.append(await kernel_manager.start_kernel(kernel_name="python3"))
        if stagger:
            await asyncio.sleep(stagger)
    return ids


async def wait_settled(kernel_manager: Any, ids: list[str], quiet_seconds: float, limit: float = 120) -> None:
    """Wait until no kernel has had activity for `quiet_seconds` (they finished starting)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        now = utcnow()
        if all((now - kernel_manager.get_kernel(k).last_activity).total_seconds() > quiet_seconds
               for k in ids):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("kernels did not settle")


# ---- 1. lateness ------------------------------------------------------------------------------


async def lateness(culler: str, sizes: Sizes, interval: int = 1) -> list[float]:
    """Seconds from each kernel's deadline (last activity + timeout) until it is gone."""
    timeout = sizes.timeout_seconds
    builtin = culler == "builtin"
    kernel_manager = AsyncMappingKernelManager(
        cull_idle_timeout=timeout if builtin else 0, cull_interval=interval
    )
    monitor = None
    if builtin:
        kernel_manager.initialize_culler()
    else:
        monitor = our_monitor(kernel_manager, timeout)
        monitor.start()
    ids: list[str] = []
    last_activity: dict[str, datetime] = {}
    gone_at: dict[str, datetime] = {}
    all_started = False

    async def watch() -> None:
        # Runs while kernels are still being started: early ones may be culled meanwhile.
        limit = time.monotonic() + timeout + (interval if builtin else 0) + 120
        while (not all_started or len(gone_at) < len(ids)) and time.monotonic() < limit:
            now = utcnow()
            for kernel_id in list(ids):
                if kernel_id in gone_at:
                    continue
                if kernel_id in kernel_manager:
                    last_activity[kernel_id] = kernel_manager.get_kernel(kernel_id).last_activity
                else:
                    gone_at[kernel_id] = now
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    for _ in range(sizes.lateness_kernels):
        kernel_id = await kernel_manager.start_kernel(kernel_name="python3")
        if monitor is not None:
            monitor.wake()  # as the extension's kernel_actions listener does when a kernel starts
        last_activity[kernel_id] = kernel_manager.get_kernel(kernel_id).last_activity
        ids.append(kernel_id)
        await asyncio.sleep(sizes.stagger_seconds)
    all_started = True
    await watcher
    if monitor is not None:
        await monitor.stop()
    if builtin and kernel_manager._culler_callback is not None:
        kernel_manager._culler_callback.stop()
    await kernel_manager.shutdown_all()
    return [
        (gone_at[k] - (last_activity[k] + timedelta(seconds=timeout))).total_seconds()
        for k in ids if k in gone_at
    ]


# ---- 2. mass cull -----------------------------------------------------------------------------


def machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


async def mass_cull(culler: str, count: int, cpu: dict[str, float] | None = None) -> float:
    """Seconds for one pass to shut down `count` idle kernels that are all past their deadline.

    With `cpu`, also records how busy the whole machine was meanwhile: the kernels' own exits
    need CPU, which bounds any culler on a machine with few cores."""
    timeout = 1
    kernel_manager = AsyncMappingKernelManager(cull_idle_timeout=timeout, cull_interval=3600)
    ids = await start_kernels(kernel_manager, count)
    if culler != "builtin":
        # As in a running server, our monitor watches kernels as they start (observer.refresh);
        # its subscription's welcome message is then part of their start.
        monitor = our_monitor(kernel_manager, timeout)
        await monitor.observer.refresh(False)
    await wait_settled(kernel_manager, ids, quiet_seconds=timeout + 1.0)
    gc.collect()
    busy_before, total_before = machine_busy_ticks()
    if culler == "builtin":
        started = time.perf_counter()
        await kernel_manager.cull_kernels()
    else:
        started = time.perf_counter()
        await monitor.run_pass()
        await monitor.executor.wait()  # the pass hands the shutdowns to tracked tasks
    elapsed = time.perf_counter() - started
    busy_after, total_after = machine_busy_ticks()
    if cpu is not None:
        cpu_seconds_used = (busy_after - busy_before) / os.sysconf("SC_CLK_TCK")
        cores = os.cpu_count() or 1
        cpu.update({
            "mass_cull_machine_busy_percent": 100 * (busy_after - busy_before)
            / max(1, total_after - total_before),
            "kernel_exit_cpu_ms": 1000 * cpu_seconds_used / count,
            # No culler can finish sooner: every kernel's exit needs this CPU, on `cores` cores.
            "mass_cull_cpu_bound_seconds": cpu_seconds_used / cores,
        })
    remaining = [k for k in ids if k in kernel_manager]
    await kernel_manager.shutdown_all()
    if remaining:
        raise RuntimeError(f"{culler}: {len(remaining)} kernels survived the pass")
    return elapsed


async def single_shutdown(repeats: int = 3) -> float:
    kernel_manager = AsyncMappingKernelManager()
    times = []
    for _ in range(repeats):
        (kernel_id,) = await start_kernels(kernel_manager, 1)
        await wait_settled(kernel_manager, [kernel_id], quiet_seconds=1.0)
        started = time.perf_counter()
        await kernel_manager.shutdown_kernel(kernel_id)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# ---- 3. pass cost -----------------------------------------------------------------------------


class SyntheticKernelManager:
    """Shaped like jupyter_server's MappingKernelManager: `_kernels`, `_kernel_connections`."""

    def __init__(self, count: int, now: datetime) -> None:
        self._kernels = {
            f"kernel-{i}": SimpleNamespace(
                kernel_name="python3",
                execution_state="busy" if i % 10 == 0 else "idle",
                last_activity=now - timedelta(seconds=i % 3600),
            )
            for i in range(count)
        }
        self._kernel_connections = {kernel_id: i % 2 for i, kernel_id in enumerate(self._kernels)}

    def list_kernel_ids(self) -> list[str]:
        return list(self._kernels)

    def get_kernel(self, kernel_id: str) -> Any:
        return self._kernels[kernel_id]


class SyntheticTerminalManager:
    def __init__(self, count: int, now: datetime) -> None:
        self.terminals = {
            str(i): SimpleNamespace(last_activity=now - timedelta(seconds=i % 3600)) for i in range(count)
        }


def floor_pass(kernel_manager: SyntheticKernelManager, terminal_manager: SyntheticTerminalManager) -> int:
    """A bare loop reading the same fields a pass reads: the cost floor."""
    connections = kernel_manager._kernel_connections
    seen = 0
    for kernel_id in kernel_manager.list_kernel_ids():
        kernel = kernel_manager.get_kernel(kernel_id)
        if kernel.kernel_name and kernel.execution_state and kernel.last_activity:
            seen += connections.get(kernel_id, 0) + 1
    for name in list(terminal_manager.terminals):
        if terminal_manager.terminals[name].last_activity:
            seen += 1
    return seen


async def pass_cost(sizes: Sizes) -> dict[str, float]:
    now = utcnow()
    kernels = SyntheticKernelManager(sizes.pass_kernels, now)
    terminals = SyntheticTerminalManager(sizes.pass_terminals, now)
    resources = sizes.pass_kernels + sizes.pass_terminals
    # A 2-hour timeout: nothing is due, so the pass measures observing and deciding only.
    monitor = our_monitor(kernels, 7200, terminal_manager=terminals)

    max_block = 0.0
    running = True

    async def sentinel() -> None:
        nonlocal max_block
        while running:
            before = time.perf_counter()
            await asyncio.sleep(0)
            max_block = max(max_block, time.perf_counter() - before)

    sentinel_task = asyncio.create_task(sentinel())
    await asyncio.sleep(0.01)
    # Our pass and the floor in alternating rounds, so that both see the same machine state (a
    # busy neighbour, a frequency change); the ratio is taken per round.
    pass_times, floor_times, ratios = [], [], []
    for _ in range(sizes.passes):
        started = time.process_time()
        await monitor.run_pass()
        pass_time = time.process_time() - started
        await asyncio.sleep(0)
        started = time.process_time()
        floor_pass(kernels, terminals)
        floor_time = time.process_time() - started
        pass_times.append(pass_time)
        floor_times.append(floor_time)
        if floor_time > 0:
            ratios.append(pass_time / floor_time)
    running = False
    await sentinel_task
    median_pass = statistics.median(pass_times)
    median_floor = statistics.median(floor_times)
    return {
        "pass_cpu_median_ms": median_pass * 1000,
        "pass_cpu_max_ms": max(pass_times) * 1000,
        "pass_cost_us_per_resource": median_pass / resources * 1e6,
        "pass_floor_us_per_resource": median_floor / resources * 1e6,
        "pass_cost_vs_floor": statistics.median(ratios) if ratios else float("nan"),
        "pass_cost_vs_floor_p25": percentile(ratios, 0.25),
        "pass_cost_vs_floor_p75": percentile(ratios, 0.75),
        "pass_cost_vs_floor_rounds": len(ratios),
        "max_loop_block_ms": max_block * 1000,
        "pass_resources": resources,
    }


# ---- 7. activity sources: a pass with them on and off -------------------------------------------


async def sources_cost(sizes: Sizes) -> dict[str, Any]:
    """A small server's pass (20 kernels, 5 terminals: where an addition shows most), with the
    activity sources on (jupyter_server's activity hook with jupyter-server-proxy's entry, login
    sessions from /proc) and off, in alternating rounds; and one /proc scan of the login sessions,
    which a pass makes in a thread at most every LOGIN_SCAN_SECONDS."""
    now = utcnow()
    kernels, terminals = SyntheticKernelManager(20, now), SyntheticTerminalManager(5, now)

    def server_settings() -> dict[str, Any]:
        return {"started": now, "last_activity_times": {"jupyter-server-proxy": now}}

    monitors = {
        "on": our_monitor(kernels, 7200, terminals, server_settings()),
        "off": our_monitor(kernels, 7200, terminals, server_settings(), login_sessions=False,
                           ignored_activity_sources=(HOOK_SOURCE_NAME,)),
    }
    assert monitors["on"].observer.sources.sources and not monitors["off"].observer.sources.sources
    times: dict[str, list[float]] = {"on": [], "off": []}
    rounds = sizes.passes * 10
    started_wall = time.monotonic()
    for _ in range(rounds):
        for state, monitor in monitors.items():
            started = time.process_time()
            await monitor.run_pass()
            times[state].append(time.process_time() - started)
    wall = time.monotonic() - started_wall
    scans = []
    for _ in range(20):
        started = time.perf_counter()
        sessions = read_login_activity()
        scans.append(time.perf_counter() - started)
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    return {
        "sources_pass_rounds": rounds,
        "sources_pass_wall_seconds": wall,
        "sources_pass_cpu_on_us": on * 1e6,
        "sources_pass_cpu_off_us": off * 1e6,
        "sources_pass_cpu_added_us": (on - off) * 1e6,
        "sources_pass_cpu_on_p95_us": percentile(times["on"], 0.95) * 1e6,
        "sources_pass_cpu_off_p95_us": percentile(times["off"], 0.95) * 1e6,
        "login_scan_ms": statistics.median(scans) * 1000,
        "login_scan_processes": sum(1 for entry in os.listdir("/proc") if entry.isdigit()),
        "login_scan_sessions": len(sessions),
        "login_scan_every_seconds": LOGIN_SCAN_SECONDS,
    }


# ---- 4. idle overhead -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(
    home: Path, with_extension: bool, config: dict | None = None, args: tuple[str, ...] = ()
) -> tuple[subprocess.Popen, int]:
    import requests

    home.mkdir(parents=True)
    (home / ".jupyter").mkdir()
    (home / ".jupyter" / "jupyter_server_config.json").write_text(json.dumps(
        {"ServerApp": {"jpserver_extensions": {"jupyter_autoshutdown": with_extension}}, **(config or {})}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env.update(HOME=str(home), JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
               JUPYTER_DATA_DIR=str(home / "data"), JUPYTER_RUNTIME_DIR=str(home / "runtime"))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", f"--port={port}", "--ip=127.0.0.1", "--no-browser",
         "--allow-root", "--IdentityProvider.token=bench", f"--ServerApp.root_dir={home}", *args],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/api/status",
                            headers={"Authorization": "token bench"}, timeout=2).ok:
                return process, port
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start")


def idle_overhead(sizes: Sizes) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        servers = {
            "with": start_server(Path(tmp) / "with", True),
            "without": start_server(Path(tmp) / "without", False),
        }
        try:
            time.sleep(3)  # let start-up work finish
            before = {name: cpu_seconds(p.pid) for name, (p, _) in servers.items()}
            time.sleep(sizes.idle_window_seconds)
            used = {name: cpu_seconds(p.pid) - before[name] for name, (p, _) in servers.items()}
            rss = {name: rss_mb(p.pid) for name, (p, _) in servers.items()}
        finally:
            for process, _ in servers.values():
                process.terminate()
            for process, _ in servers.values():
                process.wait(30)
    tick = 1 / os.sysconf("SC_CLK_TCK")
    return {
        "idle_window_seconds": sizes.idle_window_seconds,
        "idle_cpu_seconds_with": used["with"],
        "idle_cpu_seconds_without": used["without"],
        # /proc counts in clock ticks: compare at least one tick so an idle 0 does not divide by 0.
        "idle_cpu_ratio": max(used["with"], tick) / max(used["without"], tick),
        "rss_with_mb": rss["with"],
        "rss_without_mb": rss["without"],
        "rss_overhead_mb": rss["with"] - rss["without"],
    }


# ---- 5. the app action while a browser tab stays open -------------------------------------------

#: jupyter_server checks shutdown_no_activity_timeout once a minute (a fixed 60 s period).
BUILTIN_NO_ACTIVITY_CHECK_SECONDS = 60.0
#: What an open, visible JupyterLab tab polls (it does so about every 10 s; here every 2 s).
TAB_POLLS = ("api/kernels", "api/sessions", "api/terminals", "api/contents")
TAB_POLL_SECONDS = 2.0


def poll_like_an_open_tab(port: int, stop: Any) -> None:
    import requests

    session = requests.Session()
    session.headers["Authorization"] = "token bench"
    while not stop.is_set():
        for route in TAB_POLLS:
            try:
                session.get(f"http://127.0.0.1:{port}/{route}", timeout=5)
            except requests.RequestException:
                return  # the server stopped
        stop.wait(TAB_POLL_SECONDS)


def open_tab_app_action(sizes: Sizes) -> dict[str, Any]:
    """Seconds from our app deadline to the action while a tab polls; jupyter_server's own
    shutdown_no_activity_timeout under the same polling (and without it, as a control)."""
    import threading

    import requests

    timeout = sizes.open_tab_timeout_seconds
    cap = timeout + BUILTIN_NO_ACTIVITY_CHECK_SECONDS + 30
    results: dict[str, Any] = {"open_tab_timeout_seconds": timeout, "open_tab_poll_seconds": TAB_POLL_SECONDS}
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "app-action-ran"
        ours, ours_port = start_server(Path(tmp) / "ours", True, {"AutoShutdown": {
            "idle_timeout": timeout / 60, "app_action": "command", "warning_minutes": 0,
            "startup_grace_minutes": 0,
            "app_command": [sys.executable, "-c",
                            "import sys, time; open(sys.argv[1], 'w').write(repr(time.time()))", str(marker)],
        }})
        servers = {"ours": (ours, ours_port)}
        if sizes.open_tab_builtin:
            no_activity = ("--ServerApp.shutdown_no_activity_timeout=" + format(timeout, "g"),)
            servers["builtin"] = start_server(Path(tmp) / "builtin", False, args=no_activity)
            servers["builtin_no_tab"] = start_server(Path(tmp) / "builtin-no-tab", False, args=no_activity)
        stop = threading.Event()
        pollers = [threading.Thread(target=poll_like_an_open_tab, args=(port, stop), daemon=True)
                   for name, (_, port) in servers.items() if name != "builtin_no_tab"]
        try:
            started = time.monotonic()
            status = requests.get(f"http://127.0.0.1:{ours_port}/autoshutdown/api/status",
                                  headers={"Authorization": "token bench"}, timeout=5).json()
            deadline = datetime.fromisoformat(status["app"]["action_at"]).timestamp()
            for poller in pollers:
                poller.start()
            exited_at: dict[str, float] = {}
            while time.monotonic() - started < (cap if sizes.open_tab_builtin else timeout + 30):
                for name, (process, _) in servers.items():
                    if name not in exited_at and process.poll() is not None:
                        exited_at[name] = time.monotonic() - started
                if marker.exists() and (not sizes.open_tab_builtin or len(exited_at) == 2):
                    break  # the builtin under polling does not stop: its cap ends the run
                time.sleep(0.1)
            results["app_action_lateness_open_tab_seconds"] = (
                float(marker.read_text()) - deadline if marker.exists() else None)
            if sizes.open_tab_builtin:
                results.update({
                    "builtin_app_stopped_open_tab": "builtin" in exited_at,
                    "builtin_app_stopped_no_tab": "builtin_no_tab" in exited_at,
                    "builtin_no_tab_stop_seconds": exited_at.get("builtin_no_tab"),
                    "builtin_open_tab_cap_seconds": cap,
                })
        finally:
            stop.set()
            for process, _ in servers.values():
                if process.poll() is None:
                    process.terminate()
            for process, _ in servers.values():
                process.wait(30)
    return results


# ---- run --------------------------------------------------------------------------------------


async def run_async(sizes: Sizes, progress: Any) -> dict[str, Any]:
    results: dict[str, Any] = {}
    progress("lateness: ours")
    ours = await lateness("ours", sizes)
    progress("lateness: built-in culler, cull_interval=1")
    builtin = await lateness("builtin", sizes, interval=1)
    results.update({
        "lateness_kernels": sizes.lateness_kernels,
        "lateness_timeout_seconds": sizes.timeout_seconds,
        "lateness_p50_seconds": percentile(ours, 0.5),
        "lateness_p95_seconds": percentile(ours, 0.95),
        "lateness_max_seconds": max(ours),
        "builtin_lateness_p50_seconds": percentile(builtin, 0.5),
        "builtin_lateness_p95_seconds": percentile(builtin, 0.95),
        "builtin_lateness_max_seconds": max(builtin),
        "builtin_lateness_interval_seconds": 1,
    })
    if sizes.builtin_default_interval:
        progress("lateness: built-in culler, default cull_interval=300 (takes 5 minutes)")
        default = await lateness("builtin", sizes, interval=300)
        results.update({
            "builtin_default_lateness_p50_seconds": percentile(default, 0.5),
            "builtin_default_lateness_p95_seconds": percentile(default, 0.95),
            "builtin_default_lateness_max_seconds": max(default),
        })
    progress(f"mass cull: {sizes.mass_kernels} kernels")
    results["single_shutdown_seconds"] = await single_shutdown()
    results["mass_cull_kernels"] = sizes.mass_kernels
    cpu: dict[str, float] = {}
    results["mass_cull_seconds"] = await mass_cull("ours", sizes.mass_kernels, cpu)
    results.update(cpu)
    results["builtin_mass_cull_seconds"] = await mass_cull("builtin", sizes.mass_kernels)
    results["mass_cull_speedup_vs_builtin"] = (
        results["builtin_mass_cull_seconds"] / results["mass_cull_seconds"])
    results["mass_cull_vs_single_shutdown"] = (
        results["mass_cull_seconds"] / results["single_shutdown_seconds"])
    progress(f"pass cost: {sizes.pass_kernels} kernels, {sizes.pass_terminals} terminals")
    results.update(await pass_cost(sizes))
    progress("activity sources: a small server's pass with them on and off")
    results.update(await sources_cost(sizes))
    return results


# ---- 6. output storms: a lost idle, and the server's CPU ----------------------------------------

#: IOPub rate limits that never trigger (0 did not turn them off): the whole storm reaches clients.
STORM_SERVER_CONFIG = {"ServerApp": {"iopub_msg_rate_limit": 1e9, "iopub_data_rate_limit": 1e12}}
#: How long a finished kernel may stay "busy" before the benchmark stops waiting (and says so).
STORM_BUSY_LIMIT_SECONDS = 120.0


class _StormServer:
    """One server of the storm comparison: a kernel, a websocket client, CPU and busy readings."""

    def __init__(self, port: int, pid: int, with_extension: bool) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.port, self.pid, self.with_extension = port, pid, with_extension
        self.headers = {"Authorization": "token bench"}
        self.cpu_seconds = 0.0
        self.busy_after: list[float] = []

    async def open(self) -> None:
        import requests
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        self.kernel_id = requests.post(f"{self.base}/api/kernels", json={"name": "python3"},
                                       headers=self.headers, timeout=30).json()["id"]
        self.ws = await websocket_connect(HTTPRequest(
            f"ws://127.0.0.1:{self.port}/api/kernels/{self.kernel_id}/channels", headers=self.headers))
        await self.run("pass")

    async def run(self, code: str) -> None:
        msg_id = uuid.uuid4().hex
        await self.ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": "bench",
                       "username": "bench", "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False},
        }))
        while True:  # until the shell reply, which is never dropped (IOPub's idle can be)
            raw = await self.ws.read_message()
            if raw is None:
                raise RuntimeError("kernel websocket closed")
            if '"execute_reply"' in raw and msg_id in raw:
                return

    def busy_now(self) -> bool:
        import requests

        if self.with_extension:
            status = requests.get(f"{self.base}/autoshutdown/api/status", headers=self.headers,
                                  timeout=10).json()
            return any(row["id"] == self.kernel_id and row["execution_state"] == "busy"
                       for row in status["kernels"])
        model = requests.get(f"{self.base}/api/kernels/{self.kernel_id}", headers=self.headers,
                             timeout=10).json()
        return model["execution_state"] == "busy"

    async def storm(self, lines: int) -> None:
        started_cpu = cpu_seconds(self.pid)
        await self.run(f"for i in range({lines}): print(i, flush=True)")
        self.cpu_seconds += cpu_seconds(self.pid) - started_cpu
        ended = time.monotonic()
        while self.busy_now() and time.monotonic() - ended < STORM_BUSY_LIMIT_SECONDS:
            await asyncio.sleep(0.25)
        self.busy_after.append(time.monotonic() - ended)

    def close(self) -> None:
        import requests

        self.ws.close()
        requests.delete(f"{self.base}/api/kernels/{self.kernel_id}", headers=self.headers, timeout=30)


async def _storms(servers: dict[str, _StormServer], sizes: Sizes) -> None:
    for server in servers.values():
        await server.open()
    try:
        # Alternating cells, so that both servers see the same machine state.
        for _ in range(sizes.storms):
            for server in servers.values():
                await server.storm(sizes.storm_lines)
    finally:
        for server in servers.values():
            server.close()


def iopub_storm(sizes: Sizes) -> dict[str, Any]:
    """A cell printing `storm_lines` lines, `storms` times, on a server with and one without the
    extension, alternating: how long a finished kernel stays busy (ours: in `status`; without:
    jupyter_server's own state), and each server's CPU during the cells (not the waits)."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        config = {**STORM_SERVER_CONFIG, "AutoShutdown": {"idle_timeout": 600}}
        processes = {name: start_server(Path(tmp) / name, name == "with", config)
                     for name in ("with", "without")}
        try:
            servers = {name: _StormServer(port, process.pid, name == "with")
                       for name, (process, port) in processes.items()}
            asyncio.run(_storms(servers, sizes))
        finally:
            for process, _ in processes.values():
                process.terminate()
            for process, _ in processes.values():
                process.wait(30)
    for name, server in servers.items():
        results[f"iopub_storm_cpu_seconds_{name}"] = server.cpu_seconds
        results[f"iopub_storm_busy_after_end_max_seconds_{name}"] = max(server.busy_after)
        results[f"iopub_storm_lost_idles_{name}"] = sum(1 for seconds in server.busy_after if seconds > 2)
    tick = 1 / os.sysconf("SC_CLK_TCK")
    results["iopub_storms"] = sizes.storms
    results["iopub_storm_lines"] = sizes.storm_lines
    # How long a lost idle keeps a finished kernel "busy" in our status (the limit: never ended).
    results["iopub_storm_lost_idle_seconds"] = results["iopub_storm_busy_after_end_max_seconds_with"]
    results["iopub_storm_server_cpu_ratio"] = (
        max(results["iopub_storm_cpu_seconds_with"], tick)
        / max(results["iopub_storm_cpu_seconds_without"], tick))
    return results


def table(results: dict[str, Any]) -> str:
    rows = [
        ("lateness p50 / p95 / max (s)", "lateness_p50_seconds", "lateness_p95_seconds",
         "lateness_max_seconds", "builtin_lateness_p50_seconds", "builtin_lateness_p95_seconds",
         "builtin_lateness_max_seconds"),
    ]
    lines = [f"machine: {results['cpu_count']} CPUs, {results['platform']}, Python {results['python']}",
             f"mode: {results['mode']}", ""]
    width = 44
    lines.append(f"{'figure':<{width}} {'ours':>14} {'built-in':>14} {'ratio':>8}")
    for label, *keys in rows:
        ours = " / ".join(f"{results[k]:.2f}" for k in keys[:3])
        theirs = " / ".join(f"{results[k]:.2f}" for k in keys[3:])
        lines.append(f"{label + ' [interval 1 s]':<{width}} {ours:>14} {theirs:>14}")
    if "builtin_default_lateness_p95_seconds" in results:
        theirs = " / ".join(f"{results[k]:.1f}" for k in (
            "builtin_default_lateness_p50_seconds", "builtin_default_lateness_p95_seconds",
            "builtin_default_lateness_max_seconds"))
        lines.append(f"{'lateness p50 / p95 / max (s) [default 300 s]':<{width}} {'':>14} {theirs:>14}")
    lines.append(
        f"{'mass cull of ' + str(results['mass_cull_kernels']) + ' kernels (s)':<{width}} "
        f"{results['mass_cull_seconds']:>14.3f} {results['builtin_mass_cull_seconds']:>14.3f} "
        f"{results['mass_cull_speedup_vs_builtin']:>7.1f}x")
    lines.append(f"{'one kernel shutdown (s)':<{width}} {results['single_shutdown_seconds']:>14.3f}"
                 f" {'':>14} {results['mass_cull_vs_single_shutdown']:>7.1f}x")
    lines.append(
        f"{'mass cull CPU bound (s): exits need CPU':<{width}} "
        f"{results['mass_cull_cpu_bound_seconds']:>14.3f}   "
        f"({results['kernel_exit_cpu_ms']:.0f} ms CPU per kernel exit, machine "
        f"{results['mass_cull_machine_busy_percent']:.0f}% busy)")
    lines.append(
        f"{'pass CPU, ' + str(results['pass_resources']) + ' resources, median/max (ms)':<{width}} "
        f"{results['pass_cpu_median_ms']:>6.1f}/{results['pass_cpu_max_ms']:<7.1f}")
    lines.append(
        f"{'pass cost per resource (us): ours / floor':<{width}} "
        f"{results['pass_cost_us_per_resource']:>14.2f} {results['pass_floor_us_per_resource']:>14.2f} "
        f"{results['pass_cost_vs_floor']:>7.1f}x")
    lines.append(f"{'longest event-loop block (ms)':<{width}} {results['max_loop_block_ms']:>14.1f}")
    lines.append(
        f"{'idle CPU over ' + format(results['idle_window_seconds'], 'g') + ' s: with / without':<{width}} "
        f"{results['idle_cpu_seconds_with']:>14.3f} {results['idle_cpu_seconds_without']:>14.3f} "
        f"{results['idle_cpu_ratio']:>7.2f}x")
    lines.append(f"{'RSS added by the extension (MB)':<{width}} {results['rss_overhead_mb']:>14.1f}")
    lines.append(
        f"{'pass/floor ratio, alternating rounds: p25-p75':<{width}} "
        f"{results['pass_cost_vs_floor_p25']:>6.1f}-{results['pass_cost_vs_floor_p75']:<7.1f}"
        f" ({results['pass_cost_vs_floor_rounds']} rounds)")
    lateness = results["app_action_lateness_open_tab_seconds"]
    if "builtin_app_stopped_open_tab" in results:
        theirs = (f"stopped: {results['builtin_app_stopped_open_tab']} "
                  f"(cap {results['builtin_open_tab_cap_seconds']:g} s; without a tab: "
                  f"{results['builtin_app_stopped_no_tab']})")
    else:
        theirs = "not run (tiny)"
    lines.append(
        f"{'app action under an open tab: s after deadline':<{width}} "
        f"{'never' if lateness is None else format(lateness, '.3f'):>14} {theirs}")
    lines.append(
        f"{'output storms: server CPU (s) with / without':<{width}} "
        f"{results['iopub_storm_cpu_seconds_with']:>14.3f} "
        f"{results['iopub_storm_cpu_seconds_without']:>14.3f} "
        f"{results['iopub_storm_server_cpu_ratio']:>7.2f}x")
    lines.append(
        f"{'output storms: busy after the cell ended, max (s)':<{width}} "
        f"{results['iopub_storm_busy_after_end_max_seconds_with']:>14.1f} "
        f"{results['iopub_storm_busy_after_end_max_seconds_without']:>14.1f}   "
        f"(waits over 2 s: {results['iopub_storm_lost_idles_with']} / "
        f"{results['iopub_storm_lost_idles_without']}"
        f" of {results['iopub_storms']} storms of {results['iopub_storm_lines']} lines, alternating; "
        f"built-in: jupyter_server's own state, which no one corrects; limit {STORM_BUSY_LIMIT_SECONDS:g} s)")
    lines.append(
        f"{'pass CPU with activity sources on / off (us)':<{width}} "
        f"{results['sources_pass_cpu_on_us']:>14.1f} {results['sources_pass_cpu_off_us']:>14.1f}   "
        f"(+{results['sources_pass_cpu_added_us']:.1f} us; p95 {results['sources_pass_cpu_on_p95_us']:.0f}"
        f" / {results['sources_pass_cpu_off_p95_us']:.0f}; 20 kernels, 5 terminals, "
        f"{results['sources_pass_rounds']} rounds)")
    lines.append(
        f"{'login sessions: one /proc scan (ms, in a thread)':<{width}} {results['login_scan_ms']:>14.2f}"
        f"   ({results['login_scan_processes']} processes, {results['login_scan_sessions']} sessions;"
        f" at most every {results['login_scan_every_seconds']:g} s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="under 3 minutes on 2 cores")
    group.add_argument("--tiny", action="store_true", help="tiny sizes, to check the code runs")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON output (default {RESULTS})")
    args = parser.parse_args(argv)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    sizes = SIZES[mode]
    logging.basicConfig(level=logging.WARNING)
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    results: dict[str, Any] = {
        "mode": mode,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "date": utcnow().isoformat(timespec="seconds"),
    }
    results.update(asyncio.run(run_async(sizes, progress)))
    progress(f"idle overhead: two idle servers for {sizes.idle_window_seconds:g} s")
    results.update(idle_overhead(sizes))
    builtin_too = " and jupyter_server's shutdown_no_activity_timeout (up to 100 s)"
    progress("app action while a tab polls: ours" + (builtin_too if sizes.open_tab_builtin else ""))
    results.update(open_tab_app_action(sizes))
    progress(f"output storms: {sizes.storms} cells of {sizes.storm_lines} lines, with and without")
    results.update(iopub_storm(sizes))
    results["total_seconds"] = time.monotonic() - started
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwritten: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
