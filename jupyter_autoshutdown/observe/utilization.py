"""Utilization-aware idleness: a kernel or terminal whose processes use CPU or GPU counts as active.

A training loop in a background thread or a quiet `python train.py` in a terminal sends no
messages, so by message activity alone it looks idle. With `utilization_aware` on, a sampler reads
the CPU time of each kernel's and terminal's process tree (psutil) and, where a GPU is present, the
GPU utilization of those processes (NVML through pynvml, else `nvidia-smi`), every
`utilization_interval` seconds. Usage above a threshold, averaged over `utilization_window`
seconds, records "active now" for that resource; the policy treats it like any other activity.

Sampling runs in a worker thread: psutil and NVML calls never run on the event loop.
"""

from __future__ import annotations

import collections
import logging
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

#: pid -> GPU utilization percent (SM) of that process, for the processes NVML reports.
GpuReader = Callable[[], Mapping[int, float]]


@dataclass(frozen=True)
class Usage:
    cpu_percent: float
    gpu_percent: float | None
    processes: int

    def describe(self) -> str:
        gpu = f", GPU {self.gpu_percent:.0f}%" if self.gpu_percent is not None else ""
        return f"CPU {self.cpu_percent:.0f}%{gpu} over {self.processes} process(es)"


def process_tree(pid: int) -> list:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _cpu_seconds(processes: Iterable) -> float:
    import psutil

    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue  # exited between listing and reading
        total += times.user + times.system
    return total


def nvml_reader(log: logging.Logger) -> GpuReader | None:
    """Per-process GPU utilization through NVML or nvidia-smi; None when there is no GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]

        def read_nvml() -> Mapping[int, float]:
            usage: dict[int, float] = collections.defaultdict(float)
            for handle in handles:
                try:
                    samples = pynvml.nvmlDeviceGetProcessUtilization(handle, 0)
                except pynvml.NVMLError:
                    continue  # no samples yet on this device
                for sample in samples:
                    usage[sample.pid] = max(usage[sample.pid], float(sample.smUtil))
            return usage

        return read_nvml
    except Exception as error:
        log.debug("auto-shutdown: NVML unavailable (%s)", error)
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return None

    def read_smi() -> Mapping[int, float]:
        # `pmon -c 1 -s u`: one sample per process: gpu pid type sm mem enc dec ... command
        output = subprocess.run([executable, "pmon", "-c", "1", "-s", "u"], capture_output=True,
                                text=True, timeout=10, check=False).stdout
        usage: dict[int, float] = {}
        for line in output.splitlines():
            fields = line.split()
            if len(fields) > 3 and not line.startswith("#") and fields[1].isdigit():
                sm = fields[3]
                usage[int(fields[1])] = max(usage.get(int(fields[1]), 0.0),
                                            float(sm) if sm.replace(".", "").isdigit() else 0.0)
        return usage

    return read_smi


class UtilizationSampler:
    """Keeps, per resource, the last time its process tree was busy above a threshold."""

    def __init__(
        self, *, cpu_threshold_percent: float, gpu_threshold_percent: float, window_seconds: float,
        gpu_reader: GpuReader | None,
    ) -> None:
        self.cpu_threshold = cpu_threshold_percent
        self.gpu_threshold = gpu_threshold_percent
        self.window = window_seconds
        self.gpu_reader = gpu_reader
        #: key -> last time usage over the window was above a threshold.
        self.active_at: dict[str, datetime] = {}
        #: key -> the latest reading, for `status`.
        self.usage: dict[str, Usage] = {}
        self._samples: dict[str, collections.deque] = {}

    def sample(self, pids: Mapping[str, int], now: datetime, monotonic: float) -> None:
        """One reading of every resource's process tree. Blocking: call it in a worker thread."""
        gpu = self.gpu_reader() if self.gpu_reader is not None else {}
        # New dicts swapped in at the end: the event loop reads them while this thread works.
        active_at = {key: at for key, at in self.active_at.items() if key in pids}
        usages: dict[str, Usage] = {}
        for gone in self._samples.keys() - pids.keys():
            del self._samples[gone]
        for key, pid in pids.items():
            processes = process_tree(pid)
            history = self._samples.setdefault(key, collections.deque())
            history.append((monotonic, _cpu_seconds(processes)))
            while len(history) > 2 and monotonic - history[1][0] >= self.window:
                history.popleft()  # keep one sample at or beyond the window's start
            start_time, start_cpu = history[0]
            elapsed = monotonic - start_time
            cpu_percent = max(0.0, (history[-1][1] - start_cpu) / elapsed * 100) if elapsed > 0 else 0.0
            pids_in_tree = {process.pid for process in processes}
            gpu_values = [gpu[p] for p in pids_in_tree if p in gpu]
            gpu_percent = max(gpu_values) if gpu_values else (0.0 if self.gpu_reader else None)
            usages[key] = Usage(cpu_percent, gpu_percent, len(processes))
            if elapsed > 0 and (
                cpu_percent > self.cpu_threshold
                or (gpu_percent is not None and gpu_percent > self.gpu_threshold)
            ):
                active_at[key] = now
        self.active_at, self.usage = active_at, usages
