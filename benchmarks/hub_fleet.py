"""The hub service and jupyterhub-idle-culler side by side against one real JupyterHub.

    python benchmarks/hub_fleet.py            # 2,000 users, 500 running servers (about 5 minutes)
    python benchmarks/hub_fleet.py --quick    # 200 users, 50 running servers (about 1-2 minutes)

One real JupyterHub with a real configurable-http-proxy (tests/hub/node_modules), its servers a
light stand-in (benchmarks/hub_fleet_standin.py: one shared process answers for every server).
Each tool runs in turn as an external hub service with its own token, talking to the hub API
through a counting forwarder, with the same `--timeout` (3600 s), `--cull-every` and
`--concurrency` (10). Per tool: wall time, hub API requests and hub (and proxy) CPU seconds of each
sweep that stopped nothing, and the time from a server's deadline (its hub `last_activity` +
`--timeout`) until the hub shows it stopped. Prints a table and writes
benchmarks/results/hub_fleet.json. Method: benchmarks/README.md ("The fleet on JupyterHub").
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results" / "hub_fleet.json"
PROXY = REPO / "tests" / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"
TIMEOUT_SECONDS = 3600  # zero-to-jupyterhub's culler default; only the back-dated servers reach it
CONCURRENCY = 10
DUE_SERVERS = 5
TOKENS = {"bench": "bench-admin-token-0001", "autoshutdown": "autoshutdown-token-0001",
          "idle-culler": "idle-culler-token-0001"}
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sizes:
    users: int
    servers: int
    cull_every: int
    #: Sweeps that stop nothing, measured per tool (before the first deadline).
    sweeps: int


SIZES = {"full": Sizes(2000, 500, 10, 3), "quick": Sizes(200, 50, 5, 2)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except requests.ConnectionError:
            value = None
        if value:
            return value
        time.sleep(every)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (/proc/<pid>/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


class CpuSampler:
    """Samples processes' CPU every 20 ms in a thread; `seconds(pid, start, end)` over a window."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.samples: dict[int, list[tuple[float, int]]] = {pid: [] for pid in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids:
                with suppress(OSError):
                    self.samples[pid].append((time.time(), cpu_ticks(pid)))
            self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def seconds(self, pid: int, start: float, end: float) -> float:
        """CPU between the last sample before `start` and the first after `end` (covers the window)."""
        samples = self.samples[pid]
        times = [moment for moment, _ in samples]
        before = max(0, bisect.bisect_right(times, start) - 1)
        after = min(len(samples) - 1, bisect.bisect_left(times, end))
        return (samples[after][1] - samples[before][1]) / TICK


class Hub:
    """The stand-in servers, the counting forwarder, and a real JupyterHub with its proxy."""

    def __init__(self, home: Path, stack: ExitStack) -> None:
        self.home = home
        self.stack = stack
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(HERE), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
        self.env = env
        self.standin_port, self.counter_port = free_port(), free_port()
        self.port, self.hub_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.hub_api = f"http://127.0.0.1:{self.hub_port}/hub/api"
        self.counted_api = f"http://127.0.0.1:{self.counter_port}/hub/api"
        self.standin_url = f"http://127.0.0.1:{self.standin_port}"
        self.counter_url = f"http://127.0.0.1:{self.counter_port}"
        standin = HERE / "hub_fleet_standin.py"
        self.standin = self.start("standin", [sys.executable, str(standin), "servers",
                                              f"--port={self.standin_port}"])
        self.counter = self.start("counter", [sys.executable, str(standin), "counter",
                                              f"--port={self.counter_port}",
                                              f"--target=http://127.0.0.1:{self.hub_port}"])
        config = {
            "JupyterHub": {
                "ip": "127.0.0.1", "port": self.port, "hub_ip": "127.0.0.1", "hub_port": self.hub_port,
                "authenticator_class": "dummy", "spawner_class": "hub_fleet_standin.StandInSpawner",
                "db_url": f"sqlite:///{home}/jupyterhub.sqlite",
                "cookie_secret_file": str(home / "jupyterhub_cookie_secret"),
                "pid_file": str(home / "jupyterhub.pid"),
                "concurrent_spawn_limit": 1000, "active_server_limit": 0,
                # The default (50 a page, 200 at most) stays: both tools page through the users.
                # The hub's proxy-activity poll would move the back-dated servers' last_activity to
                # when their route was added; nothing reaches the servers through the proxy here.
                "last_activity_interval": 3600,
                "tornado_settings": {"slow_spawn_timeout": 0},
                "services": [{"name": name, "api_token": token} for name, token in TOKENS.items()],
                "load_roles": [
                    {"name": "bench", "services": ["bench"],
                     "scopes": ["admin:users", "admin:servers", "list:users", "proxy"]},
                    # docs/platforms.md: the hub service's role
                    {"name": "autoshutdown-service", "services": ["autoshutdown"],
                     "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers",
                                "proxy", "access:servers"]},
                    # jupyterhub-idle-culler's README: its role
                    {"name": "idle-culler", "services": ["idle-culler"],
                     "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]},
                ],
            },
            "ConfigurableHTTPProxy": {"command": [str(PROXY)], "api_url": f"http://127.0.0.1:{free_port()}"},
            "Authenticator": {"allow_all": True},
            "StandInSpawner": {"standin_url": self.standin_url, "http_timeout": 30},
        }
        (home / "jupyterhub_config.json").write_text(json.dumps(config))
        self.proxy_pid = 0
        self.stack.callback(self._stop_proxy)  # after the hub's own stop, which stops the proxy
        self.hub = self.start("hub", [sys.executable, "-m", "jupyterhub", "-f",
                                      str(home / "jupyterhub_config.json")])
        wait_until(lambda: self.api("GET", "").status_code == 200, 60, "the hub")
        for name, url in (("the counter", self.counter_url), ("the stand-in", self.standin_url)):
            wait_until(lambda url=url: requests.get(f"{url}/__bench__/log", timeout=5).ok,  # type: ignore[misc]
                       30, name)
        self.proxy_pid = wait_until(lambda: children(self.hub.pid)[:1], 30, "the proxy")[0]

    def _stop_proxy(self) -> None:
        """The proxy the hub started, should the hub have died without stopping it."""
        with suppress(OSError):
            if b"configurable-http-proxy" in Path(f"/proc/{self.proxy_pid}/cmdline").read_bytes():
                os.kill(self.proxy_pid, signal.SIGTERM)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = (self.home / f"{name}.log").open("wb")
        self.stack.callback(log.close)
        process = subprocess.Popen(argv, env=env or self.env, cwd=self.home, stdout=log,
                                   stderr=subprocess.STDOUT)
        self.stack.callback(stop_process, process)
        return process

    def output(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")

    def api(self, method: str, path: str, headers: dict[str, str] | None = None,
            **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"token {TOKENS['bench']}", **(headers or {})}
        return requests.request(method, f"{self.hub_api}/{path}", headers=headers, timeout=120, **kwargs)

    def create_users(self, names: list[str]) -> None:
        for chunk in range(0, len(names), 500):
            response = self.api("POST", "users", json={"usernames": names[chunk:chunk + 500]})
            assert response.status_code == 201, response.text

    def spawn(self, names: list[str], options: dict[str, dict] | None = None) -> None:
        def one(name: str) -> None:
            response = self.api("POST", f"users/{name}/server", json=(options or {}).get(name, {}))
            assert response.status_code in (201, 202), (name, response.status_code, response.text)

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(one, names))

    def ready_count(self) -> int:
        response = self.api("GET", "users?state=ready&limit=1",
                            headers={"Accept": "application/jupyterhub-pagination+json"})
        return int(response.json()["_pagination"]["total"])

    def server(self, name: str) -> dict | None:
        return self.api("GET", f"users/{name}").json()["servers"].get("")

    def records(self, which: str, clear: bool = False) -> list[list[Any]]:
        base = self.counter_url if which == "counter" else self.standin_url
        if clear:
            requests.post(f"{base}/__bench__/log", timeout=30)
            return []
        return requests.get(f"{base}/__bench__/log", timeout=30).json()


def parse_time(text: str) -> float:
    """A hub timestamp as seconds since the epoch (the hub writes UTC, with or without "Z")."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def split_sweeps(records: list[list[Any]], gap: float) -> list[list[list[Any]]]:
    """Requests grouped into sweeps: a new sweep starts after `gap` seconds without a request."""
    sweeps: list[list[list[Any]]] = []
    last_end = -1.0
    for record in sorted(records, key=lambda item: item[0]):
        if not sweeps or record[0] - last_end > gap:
            sweeps.append([])
        sweeps[-1].append(record)
        last_end = max(last_end, record[1])
    return sweeps


def kind(record: list[Any]) -> str:
    method, path = record[2], record[3]
    if path.endswith("/autoshutdown/api/status"):
        return "status"
    if method == "DELETE":
        return "DELETE"
    if path.rstrip("/").endswith("/hub/api"):
        return "GET /hub/api"
    return f"{method} /hub/api/{path.split('/hub/api/', 1)[-1].split('/')[0]}"


def run_tool(hub: Hub, tool: str, sizes: Sizes, progress: Callable[[str], None]) -> dict[str, Any]:
    """One tool: back-dated servers due at staggered times, its sweeps, until they are stopped."""
    label = "autoshutdown" if tool == "hub-service" else "idle-culler"
    every = sizes.cull_every
    due = [f"due-{tool}-{index}" for index in range(DUE_SERVERS)]
    hub.create_users(due)
    # The first deadline falls after the measured sweeps; the others follow it, spread over one
    # --cull-every so that they meet the sweeps at different phases.
    lead = sizes.sweeps * every + 4
    gap = every / DUE_SERVERS
    hub.spawn(due, {name: {"idle_seconds": TIMEOUT_SECONDS - lead - index * gap}
                    for index, name in enumerate(due)})
    servers = wait_until(lambda: [hub.server(name) for name in due]
                         if all((hub.server(name) or {}).get("ready") for name in due) else None,
                         30, "the back-dated servers")
    deadlines = {name: parse_time(server["last_activity"]) + TIMEOUT_SECONDS
                 for name, server in zip(due, servers, strict=True)}
    hub.records("counter", clear=True)
    hub.records("standin", clear=True)
    sampler = CpuSampler([hub.hub.pid, hub.proxy_pid])
    env = {**hub.env, "JUPYTERHUB_API_TOKEN": TOKENS[label]}
    common = [f"--timeout={TIMEOUT_SECONDS}", f"--cull-every={every}", f"--concurrency={CONCURRENCY}"]
    if tool == "hub-service":
        argv = [sys.executable, "-m", "jupyter_autoshutdown", "hub-service", f"--api-url={hub.counted_api}",
                f"--proxy-url={hub.url}", *common]
    else:
        argv = [sys.executable, "-m", "jupyterhub_idle_culler", f"--url={hub.counted_api}", *common,
                *(["--api-page-size=200"] if tool == "idle-culler-200" else [])]
    progress(f"{tool}: {' '.join(argv[1:])}")
    process = hub.start(tool, argv, env=env)
    stopped: dict[str, float] = {}
    try:
        cap = time.time() + lead + 2 * every + 60
        # No polling of the hub during the measured sweeps (it would be hub CPU in their windows).
        time.sleep(max(0.0, min(deadlines.values()) - 0.5 - time.time()))
        while len(stopped) < len(due) and time.time() < cap:
            for name in due:
                if name not in stopped and hub.server(name) is None:
                    stopped[name] = time.time()
            time.sleep(0.25)
    finally:
        stop_process(process)
        sampler.stop()
    counted, statuses = hub.records("counter"), hub.records("standin")
    sweeps = []
    for requests_of_sweep in split_sweeps(counted + statuses, gap=every / 3):
        start, end = min(r[0] for r in requests_of_sweep), max(r[1] for r in requests_of_sweep)
        kinds: dict[str, int] = {}
        for record in requests_of_sweep:
            kinds[kind(record)] = kinds.get(kind(record), 0) + 1
        # The requests of one kind run as one phase of the sweep (the service lists users, then
        # the routing table, then reads status): the hub's CPU over each phase's window.
        phases = {}
        for name in kinds:
            of_kind = [record for record in requests_of_sweep if kind(record) == name]
            phases[name] = {"wall_seconds": max(r[1] for r in of_kind) - min(r[0] for r in of_kind),
                            "hub_cpu_seconds": sampler.seconds(hub.hub.pid, min(r[0] for r in of_kind),
                                                               max(r[1] for r in of_kind))}
        sweeps.append({
            "start": start, "wall_seconds": end - start, "phases": phases,
            "hub_requests": sum(count for name, count in kinds.items() if name != "status"),
            "status_reads": kinds.get("status", 0), "requests_by_kind": kinds,
            "hub_cpu_seconds": sampler.seconds(hub.hub.pid, start, end),
            "proxy_cpu_seconds": sampler.seconds(hub.proxy_pid, start, end),
            "stops": kinds.get("DELETE", 0),
        })
    clean = [sweep for sweep in sweeps if not sweep["stops"]][:sizes.sweeps]
    late = [stopped[name] - deadlines[name] for name in due if name in stopped]
    # The part of the delay that is the tool's, not the phase of --cull-every: from the start of
    # the first sweep after the deadline until the hub shows the server stopped.
    starts = sorted(sweep["start"] for sweep in sweeps)
    reaction = [stopped[name] - next(start for start in starts if start >= deadlines[name])
                for name in due if name in stopped and any(start >= deadlines[name] for start in starts)]
    reported = [float(match) for match in re.findall(r"swept \d+ servers in ([\d.]+) s", hub.output(tool))]

    def median(key: str) -> float:
        return statistics.median(sweep[key] for sweep in clean) if clean else float("nan")

    return {
        "sweep_wall_seconds": median("wall_seconds"),
        "sweep_hub_requests": median("hub_requests"),
        "sweep_status_reads": median("status_reads"),
        "sweep_hub_cpu_seconds": median("hub_cpu_seconds"),
        "sweep_proxy_cpu_seconds": median("proxy_cpu_seconds"),
        "sweep_requests_by_kind": clean[0]["requests_by_kind"] if clean else {},
        "sweep_phases": {name: {key: statistics.median(sweep["phases"][name][key] for sweep in clean)
                                for key in ("wall_seconds", "hub_cpu_seconds")}
                         for name in (clean[0]["phases"] if clean else {})},
        "sweeps_measured": len(clean),
        "sweeps": [{key: value for key, value in sweep.items() if key != "start"} for sweep in sweeps],
        "self_reported_sweep_seconds": reported,
        "deadline_to_stop_seconds": sorted(late),
        "deadline_to_stop_p50_seconds": statistics.median(late) if late else float("nan"),
        "deadline_to_stop_max_seconds": max(late) if late else float("nan"),
        "sweep_start_to_stop_seconds": sorted(reaction),
        "sweep_start_to_stop_max_seconds": max(reaction) if reaction else float("nan"),
        "stopped": f"{len(late)} of {len(due)}",
        "stops_requests": sum(sweep["stops"] for sweep in sweeps),
    }


def table(results: dict[str, Any]) -> str:
    tools = [tool for tool in ("hub-service", "idle-culler", "idle-culler-200") if tool in results["tools"]]
    names = {"hub-service": "hub service", "idle-culler": "idle-culler",
             "idle-culler-200": "idle-culler --api-page-size=200"}
    rows = [
        ("sweep wall time (s)", "sweep_wall_seconds", "{:.2f}"),
        ("hub API requests per sweep", "sweep_hub_requests", "{:.0f}"),
        ("status reads per sweep (direct)", "sweep_status_reads", "{:.0f}"),
        ("hub CPU per sweep (s)", "sweep_hub_cpu_seconds", "{:.2f}"),
        ("proxy CPU per sweep (s)", "sweep_proxy_cpu_seconds", "{:.2f}"),
        ("deadline to stop, p50 (s)", "deadline_to_stop_p50_seconds", "{:.2f}"),
        ("deadline to stop, max (s)", "deadline_to_stop_max_seconds", "{:.2f}"),
        ("due sweep's start to stop, max (s)", "sweep_start_to_stop_max_seconds", "{:.2f}"),
    ]
    out = [f"{results['users']} users, {results['servers']} running servers; --timeout={TIMEOUT_SECONDS} "
           f"--cull-every={results['cull_every']} --concurrency={CONCURRENCY}; medians of "
           f"{results['sweeps']} sweeps that stopped nothing", ""]
    others = [tool for tool in tools if tool != "hub-service"]
    out.append("| figure | " + " | ".join(names[tool] for tool in tools) + " | "
               + " | ".join(f"service / {names[tool]}" for tool in others) + " |")
    out.append("|---" * (len(tools) + len(others) + 1) + "|")
    for title, key, fmt in rows:
        values = [results["tools"][tool][key] for tool in tools]
        ours = results["tools"]["hub-service"][key]
        ratios = [f"{ours / results['tools'][tool][key]:.2f}x" if results["tools"][tool][key] else "-"
                  for tool in others]
        out.append(f"| {title} | " + " | ".join(fmt.format(value) for value in values) + " | "
                   + " | ".join(ratios) + " |")
    for tool in tools:
        figures = results["tools"][tool]
        phases = "; ".join(f"{name}: {phase['wall_seconds']:.2f} s, hub CPU {phase['hub_cpu_seconds']:.2f} s"
                           for name, phase in figures["sweep_phases"].items())
        out.append(f"\n{names[tool]}: requests of one sweep {figures['sweep_requests_by_kind']} "
                   f"(phases, each from its first request to its last answer: {phases}); "
                   f"stopped {figures['stopped']}, each after its deadline: "
                   + ", ".join(f"{value:.2f}" for value in figures["deadline_to_stop_seconds"]) + " s"
                   + (f"; its own sweep log: {figures['self_reported_sweep_seconds']} s"
                      if figures["self_reported_sweep_seconds"] else ""))
    out.append(f"\nsetup: {results['users']} users created in {results['create_users_seconds']:.1f} s, "
               f"{results['servers']} servers ready in {results['spawn_seconds']:.1f} s; hub idle CPU "
               f"{results['hub_idle_cpu_percent']:.1f}% of a core")
    return "\n".join(out)


@contextmanager
def running_hub(keep: bool) -> Iterator[Hub]:
    with ExitStack() as stack:
        home = Path(tempfile.mkdtemp(prefix="hub-fleet-"))
        if not keep:
            import shutil

            stack.callback(shutil.rmtree, home, True)
        yield Hub(home, stack)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 users, 50 servers: about 1-2 minutes")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON output (default {RESULTS})")
    parser.add_argument("--keep", action="store_true", help="keep the hub's folder and logs (printed)")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    sizes = SIZES[mode]
    if not PROXY.exists():
        raise SystemExit(f"configurable-http-proxy is missing: run `npm ci` in {PROXY.parents[2]}")
    began = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - began:6.1f} s] {message}", file=sys.stderr, flush=True)

    results: dict[str, Any] = {
        "mode": mode, "users": sizes.users, "servers": sizes.servers, "cull_every": sizes.cull_every,
        "sweeps": sizes.sweeps, "timeout": TIMEOUT_SECONDS, "concurrency": CONCURRENCY,
        "cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "tools": {},
    }
    with running_hub(args.keep) as hub:
        if args.keep:
            progress(f"hub folder: {hub.home}")
        names = [f"user-{index:05d}" for index in range(sizes.users)]
        moment = time.monotonic()
        hub.create_users(names)
        results["create_users_seconds"] = time.monotonic() - moment
        progress(f"{sizes.users} users in {results['create_users_seconds']:.1f} s; spawning {sizes.servers}")
        moment = time.monotonic()
        hub.spawn(names[:sizes.servers])
        wait_until(lambda: hub.ready_count() >= sizes.servers, 300, "the servers to be ready", every=1)
        results["spawn_seconds"] = time.monotonic() - moment
        progress(f"{sizes.servers} servers ready in {results['spawn_seconds']:.1f} s")
        time.sleep(2)
        idle_from, idle_ticks = time.monotonic(), cpu_ticks(hub.hub.pid)
        time.sleep(5)
        results["hub_idle_cpu_percent"] = 100 * (cpu_ticks(hub.hub.pid) - idle_ticks) / TICK / (
            time.monotonic() - idle_from)
        for tool in ("idle-culler", "hub-service", "idle-culler-200"):
            results["tools"][tool] = run_tool(hub, tool, sizes, progress)
            progress(f"{tool}: sweep {results['tools'][tool]['sweep_wall_seconds']:.2f} s, "
                     f"{results['tools'][tool]['sweep_hub_requests']:.0f} hub requests; stopped "
                     f"{results['tools'][tool]['stopped']}")
    results["total_seconds"] = time.monotonic() - began
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwritten: {args.output} ({results['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
