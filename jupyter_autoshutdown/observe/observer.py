"""The observer: everything the policy looks at, read into a `Snapshot`, and all per-resource input
state behind it.

It owns first-seen times (the idle clock of a resource that reports no activity time), the gateway
refresh and its backoff, per-request busy tracking (observe/running_requests.py), exemptions, and
the utilization sampler's loop. Its work is split by what may change state:

- `refresh()` (the check pass only) does the I/O: it watches new kernels' status messages, lists a
  gateway's kernels when the pass needs fresh remote state, and reads exemptions.
- `snapshot()` reads; it changes nothing (a `status` GET calls it as often as open tabs ask).
- `prune()` forgets what is gone, and only after a complete reading: a gateway that did not
  answer, or a manager that could not be read, is not "every kernel is gone".

The pure readers it uses are in observe/readers.py (shared with observe/exemptions.py, which is why
the stateful part lives here: no import cycle)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

from ..core.records import (
    APP_KEY,
    KernelRecord,
    ResourceKey,
    Snapshot,
    TerminalRecord,
    terminal_key,
)
from ..core.schedule import stops_around
from ..core.settings import DailyStop
from ..core.telemetry import ErrorLog
from ..core.timeouts import backoff_seconds, within
from .activity import PeopleActivity
from .exemptions import Exemptions
from .keepalive import KeepAlives
from .readers import (
    RemoteKernels,
    is_remote,
    kernel_table,
    read_gateway_kernel,
    read_gateway_kernels,
    read_kernel,
    read_kernels,
    read_remote_kernel_model,
    read_remote_kernels,
    read_server_last_activity,
    read_terminal,
    read_terminals,
)
from .running_requests import RunningRequests
from .sources import ActivitySources, SourceActivity
from .utilization import UtilizationSampler

#: Backoff of gateway listings that fail: the first retry, and the longest wait.
REMOTE_BACKOFF_FIRST_SECONDS = 5.0
REMOTE_BACKOFF_MAX_SECONDS = 300.0
REMOTE_FAILED = "refreshing kernels from the gateway failed"


class Observer:
    def __init__(
        self,
        *,
        serverapp: Any,
        clock: Callable[[], datetime],
        log: logging.Logger,
        errors: ErrorLog,
        keep_alives: KeepAlives,
        terminal_manager: Callable[[], Any] | None = None,
        activity: PeopleActivity | None = None,
        server_activity: str = "people",
        exemptions: Exemptions | None = None,
        sampler: UtilizationSampler | None = None,
        remote_timeout_seconds: float = 60.0,
        utilization_interval_seconds: float = 10.0,
        on_change: Callable[[], None] = lambda: None,
        sources: ActivitySources | None = None,
    ) -> None:
        self.serverapp = serverapp
        self.clock = clock
        self.log = log
        self.errors = errors
        self.keep_alives = keep_alives
        self._terminal_manager = terminal_manager or (lambda: None)
        self.activity = activity
        self.server_activity = server_activity
        self.exemptions = exemptions
        self.sampler = sampler
        self.remote_timeout_seconds = remote_timeout_seconds
        self.utilization_interval_seconds = utilization_interval_seconds
        self.started_at = clock()
        #: When a resource that reports no activity time was first seen (key: id or "t:<name>").
        self.first_seen: dict[str, datetime] = {}
        #: Kernels exempt by their notebook's path or their own opt-out, with the reason in words,
        #: as the last pass read them (kept on error). Exemptions by kernel name come from each
        #: snapshot's own records (see _exempt).
        self.exempt: dict[str, str] = {}
        #: Exemptions by kernel name, as the last pass's snapshot had them (for re-checks).
        self._exempt_by_name: dict[str, str] = {}
        #: Kernels on a Kernel or Enterprise Gateway: read from the gateway into our own records
        #: (the manager's are left as they are: observing changes nothing).
        self.remote = is_remote(serverapp.kernel_manager)
        self.remote_error: str | None = None
        #: The latest reading of the gateway; None before the first one.
        self.remote_kernels: RemoteKernels | None = None
        self._remote_refreshed_at: datetime | None = None
        self._remote_failures = 0
        self._remote_retry_at: datetime | None = None
        #: Requests each local kernel is running, from its own status messages (observe/running_requests.py).
        self.kernel_requests: RunningRequests | None = None if self.remote else RunningRequests(
            log, clock, on_change=on_change
        )
        self._sampler_task: asyncio.Task[None] | None = None
        #: Activity sources besides Jupyter's APIs (observe/sources.py).
        self.sources = sources or ActivitySources((), log)

    def kernel_restarted(self, kernel_id: str) -> None:
        """jupyter_server restarted a kernel: the requests its old process ran are gone."""
        if self.kernel_requests is not None:
            self.kernel_requests.restarted(kernel_id)

    @property
    def kernel_manager(self) -> Any:
        return self.serverapp.kernel_manager

    def terminal_manager(self) -> Any:
        return self._terminal_manager()

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self.kernel_requests is not None:
            self.kernel_requests.start()
        if self.sampler is not None and (self._sampler_task is None or self._sampler_task.done()):
            self._sampler_task = asyncio.create_task(
                self._sample_loop(), name="jupyter_autoshutdown.observe.utilization"
            )
        self.sources.start_soon()

    def stop(self) -> asyncio.Task[None] | None:
        """Stop watching and sampling; the sampler's task (cancelled), for the caller to await."""
        if self.kernel_requests is not None:
            self.kernel_requests.close()
        self.sources.stop()
        task, self._sampler_task = self._sampler_task, None
        if task is not None:
            task.cancel()
        return task

    # ---- the check pass's I/O --------------------------------------------------------------

    async def refresh(self, remote_needed: bool, fresh_for_seconds: float = 60.0) -> None:
        """Watch new kernels, list a gateway's kernels when needed, read exemptions.

        A gateway is listed once its records are `fresh_for_seconds` old, or sooner when the pass
        needs fresh remote records (`remote_needed`: the last plan has a deadline or warning that
        has come); never during a failure's backoff.
        """
        self._watch_kernels()
        await self.sources.refresh()
        if self.remote and self._remote_refresh_due(remote_needed, fresh_for_seconds):
            await self._refresh_remote_kernels()
        if self.exemptions is not None:
            await self.refresh_exemptions()

    def _watch_kernels(self) -> None:
        if self.kernel_requests is None:
            return
        try:
            self.kernel_requests.sync(kernel_table(self.kernel_manager)[0])
        except Exception as error:  # watching is an addition: jupyter_server's state still applies
            self.errors.record(f"watching kernels' status messages failed: {error!r}")

    def _remote_refresh_due(self, remote_needed: bool, fresh_for_seconds: float) -> bool:
        now = self.clock()
        if self._remote_retry_at is not None:
            return now >= self._remote_retry_at  # failing: ask again only after the backoff
        if self._remote_refreshed_at is None:
            return True
        if (now - self._remote_refreshed_at).total_seconds() >= fresh_for_seconds:
            return True
        return remote_needed

    async def _refresh_remote_kernels(self) -> None:
        try:
            reading = await within(read_remote_kernels(self.kernel_manager, self.remote_kernels),
                                   self.remote_timeout_seconds)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            error_text = "timed out" if isinstance(error, asyncio.TimeoutError) else repr(error)
            self._remote_failures += 1
            backoff = backoff_seconds(self._remote_failures, REMOTE_BACKOFF_FIRST_SECONDS,
                                      REMOTE_BACKOFF_MAX_SECONDS)
            self._remote_retry_at = self.clock() + timedelta(seconds=backoff)
            self.remote_error = f"{REMOTE_FAILED}: {error_text}; asking again in {backoff:g} s"
            self.errors.record(self.remote_error)  # once per listing, not once per pass
        else:
            self.remote_kernels = reading
            self.remote_error = self._remote_retry_at = None
            self._remote_failures = 0
            self._remote_refreshed_at = self.clock()

    async def refresh_remote_kernel(self, kernel_id: str) -> bool:
        """Before a remote kernel's shutdown: its record made fresh; False when it is gone."""
        if not self.remote:
            return True
        kernel = kernel_table(self.kernel_manager)[0].get(kernel_id)
        if kernel is None:
            return False
        model = await within(read_remote_kernel_model(self.kernel_manager, kernel_id),
                             self.remote_timeout_seconds)
        self.remote_kernels = (self.remote_kernels or RemoteKernels()).with_kernel(
            kernel_id, kernel, model
        )
        return model is not None

    async def refresh_exemptions(self) -> None:
        assert self.exemptions is not None
        try:
            self.exempt = await self.exemptions.read(self.serverapp)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # Keep the last known exemptions: forgetting them could shut down an exempt kernel.
            self.errors.record(f"reading exemptions failed: {error!r}")

    # ---- reading (changes nothing, except first-seen times with `record`) -------------------

    def snapshot(self, now: datetime, daily_stop: DailyStop | None, *, record: bool = False) -> Snapshot:
        """What the managers say now, with the signals in force. Changes nothing, except that
        with `record` (the check pass only) a resource seen for the first time is remembered."""
        first_seen_at = self.first_seen

        def first_seen(key: str) -> datetime:
            # A resource that reports no activity time starts its idle clock when first seen.
            if record:
                return first_seen_at.setdefault(key, now)
            return first_seen_at.get(key, now)

        if self.remote:
            kernels, kernel_errors = read_gateway_kernels(
                self.kernel_manager, self.remote_kernels, first_seen
            )
        else:
            kernels, kernel_errors = read_kernels(self.kernel_manager, first_seen, self.kernel_requests)
        if self.remote_error:
            # Stale remote records could make a kernel that is working now look idle.
            kernels, kernel_errors = [], [self.remote_error]
        terminals, terminal_errors = read_terminals(self.terminal_manager(), first_seen)
        last_activity, source, activity_errors = read_server_last_activity(
            self.serverapp.web_app, self.activity, self.server_activity, self.started_at
        )
        exempt_by_name = self.exemptions.by_name(kernels) if self.exemptions is not None else {}
        if record:
            self._exempt_by_name = exempt_by_name
        return self._with_signals(Snapshot(
            kernels=tuple(kernels),
            terminals=tuple(terminals),
            server_last_activity=last_activity,
            errors=tuple(kernel_errors + terminal_errors + activity_errors),
            server_activity_source=source,
            requests_in_flight=self.activity.in_flight(now) if self.activity is not None else (),
            **people_fields(self.activity, self.started_at, self.sources.latest()),
        ), now, daily_stop, exempt_by_name)

    def signals_now(self, now: datetime, daily_stop: DailyStop | None) -> Snapshot:
        """The signals in force right now (for re-checks), on an empty snapshot."""
        last_activity, _, _ = read_server_last_activity(
            self.serverapp.web_app, self.activity, self.server_activity, self.started_at
        )
        return self._with_signals(Snapshot((), (), last_activity), now, daily_stop, self._exempt_by_name)

    def _with_signals(
        self, snapshot: Snapshot, now: datetime, daily_stop: DailyStop | None, exempt_by_name: dict[str, str]
    ) -> Snapshot:
        """Add what moves deadlines besides activity: CPU/GPU use, exemptions, schedule, keep-alive."""
        stop_last = stop_next = None
        if daily_stop is not None:
            stop_last, stop_next = stops_around(daily_stop.time, daily_stop.zone, now)
        keep_alives = self.keep_alives
        return dataclasses.replace(
            snapshot,
            active_at=self.sampler.active_at if self.sampler is not None else {},
            exempt={**exempt_by_name, **self.exempt} if exempt_by_name else self.exempt,
            stop_last=stop_last,
            stop_next=stop_next,
            stop_label=daily_stop.label if daily_stop is not None else "",
            keep_alive_until=keep_alives.global_until(now),
            kept_until=keep_alives.in_force(now) if keep_alives.targets else {},
        )

    def read_kernel(self, kernel_id: str) -> KernelRecord | None:
        """One kernel's record now (for the re-check before its shutdown); None when gone."""
        if self.remote:
            return read_gateway_kernel(
                self.kernel_manager, self.remote_kernels, kernel_id, self._first_seen_at
            )
        return read_kernel(self.kernel_manager, kernel_id, self._first_seen_at, self.kernel_requests)

    def read_terminal(self, name: str) -> TerminalRecord | None:
        terminal_manager = self.terminal_manager()
        if terminal_manager is None:
            return None
        return read_terminal(terminal_manager, name, self._first_seen_at)

    def kernels_remain(self) -> bool:
        if self.remote:  # the manager may still list kernels the gateway no longer has
            return bool(read_gateway_kernels(self.kernel_manager, self.remote_kernels)[0])
        return bool(self.kernel_manager.list_kernel_ids())

    def _first_seen_at(self, key: str) -> datetime:
        return self.first_seen.get(key) or self.clock()

    # ---- forgetting ------------------------------------------------------------------------

    def prune(self, snapshot: Snapshot) -> bool:
        """Forget first-seen times and keep-alives of what a complete `snapshot` no longer shows;
        True when it was complete (then callers may prune their own tables)."""
        if snapshot.errors:
            return False
        if self.first_seen or self.keep_alives.targets:  # most passes have nothing to forget
            live = live_keys(snapshot.kernels, snapshot.terminals)
            for stale in self.first_seen.keys() - live:
                del self.first_seen[stale]
            self.keep_alives.forget(live)
        return True

    # ---- utilization -----------------------------------------------------------------------

    def _process_ids(self) -> dict[str, int]:
        """Kernel id or "t:<name>" -> the pid at the root of its process tree (local ones only)."""
        pids: dict[str, int] = {}
        kernels, _ = kernel_table(self.kernel_manager)
        for kernel_id, kernel in list(kernels.items()):
            pid = getattr(getattr(kernel, "provisioner", None), "pid", None)
            if isinstance(pid, int):
                pids[kernel_id] = pid
        terminal_manager = self.terminal_manager()
        if terminal_manager is not None:
            for name, terminal in list(terminal_manager.terminals.items()):
                pid = getattr(getattr(terminal, "ptyproc", None), "pid", None)
                if isinstance(pid, int):
                    pids[terminal_key(name)] = pid
        return pids

    async def _sample_loop(self) -> None:
        assert self.sampler is not None
        while True:
            try:
                await asyncio.to_thread(
                    self.sampler.sample, self._process_ids(), self.clock(), time.monotonic()
                )
            except asyncio.CancelledError:
                raise
            except Exception as error:  # sampling failing must never stop the checker
                self.errors.record(f"sampling CPU/GPU use failed: {error!r}")
            await asyncio.sleep(self.utilization_interval_seconds)


def live_keys(kernels: Collection[KernelRecord], terminals: Collection[TerminalRecord]) -> set[ResourceKey]:
    """The keys of what a snapshot shows, the app included (it is always there)."""
    keys = {kernel_id for kernel_id, _name, _state, _last_activity, _connections in kernels}
    keys |= {terminal_key(name) for name, _last_activity in terminals}
    keys.add(APP_KEY)
    return keys


def people_fields(activity: PeopleActivity | None, started_at: datetime,
                  reached: SourceActivity | None) -> dict[str, Any]:
    """A snapshot's fields of what people did: on the server (or its start), and what the activity
    sources saw last (an app's page, a login session: a person's doing too)."""
    people = activity.last_activity if activity is not None else None
    latest = people if people is not None and people > started_at else started_at
    if reached is None:
        return {"people_last_activity": latest}
    return {"people_last_activity": max(latest, reached.when), "source_activity": reached.when,
            "source_activity_label": reached.label}
