"""Shutdown jobs, end to end: re-check, shut down, kill past the time limit, record.

Each job is what the executor runs for one due kernel or terminal. The re-check is the policy's
verdict on a fresh reading, made in the job's first step directly before jupyter_server's
shutdown starts (which stops watching the kernel at once): no kernel message can slip between
them. A job returns True when it shut something down, False when it spared it; it raises on
failure (the executor retries with backoff).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..core.settings import SettingsStore
from ..core.telemetry import SHUTDOWNS, Events
from ..core.timeouts import within
from ..decide.policy import Verdict, kernel_verdict, terminal_verdict
from ..observe.observer import Observer
from .executor import Executor


class ShutdownJobs:
    def __init__(
        self,
        *,
        observer: Observer,
        store: SettingsStore,
        executor: Executor,
        log: logging.Logger,
        shutdown_timeout_seconds: float,
        events: Events | None = None,
    ) -> None:
        self.observer = observer
        self.store = store
        self.executor = executor
        self.log = log
        self.shutdown_timeout_seconds = shutdown_timeout_seconds
        self.events = events

    async def shut_down_kernel(self, planned: Verdict) -> bool:
        observer = self.observer
        kernel_manager = observer.kernel_manager
        if not await observer.refresh_remote_kernel(planned.id):
            return False  # the gateway no longer has it
        #: Set by the shutdown task once the re-check has found the kernel still due.
        decided: list[tuple[Verdict, str]] = []  # (verdict, kernel name)

        async def recheck_then_shut_down() -> None:
            # The task's first step: the re-check and the start of jupyter_server's shutdown run
            # in one step of the event loop, nothing between.
            fresh = observer.read_kernel(planned.id)
            if fresh is None:
                return  # already gone
            now = observer.clock()
            settings = self.store.current  # the settings in force now, as the shutdown runs
            verdict = kernel_verdict(fresh, settings, now, observer.signals_now(now, settings.daily_stop))
            if not verdict.due:
                self.log.info("auto-shutdown: sparing kernel %s: %s", planned.id, verdict.reason)
                return
            _kernel_id, kernel_name, *_ = fresh
            self.log.info(
                "auto-shutdown: shutting down kernel %s (%s): idle for %.0f s (%s)",
                planned.id, kernel_name, verdict.idle_seconds or 0.0, verdict.reason,
            )
            decided.append((verdict, kernel_name))
            await kernel_manager.shutdown_kernel(planned.id)

        in_time = await self.executor.run_with_limit(
            recheck_then_shut_down(),
            self.shutdown_timeout_seconds,
            what=f"shutting down kernel {planned.id}",
            kill=self._killer(planned.id),
        )
        if not decided:
            return False
        verdict, kernel_name = decided[0]
        if planned.id in kernel_manager:
            raise RuntimeError("the kernel manager still lists the kernel after its shutdown")
        how = "shut down" if in_time else "killed (its shutdown took too long)"
        self._record(verdict, f"kernel {planned.id} ({kernel_name}) {how}")
        return True

    def _killer(self, kernel_id: str) -> Callable[[], Awaitable[None]] | None:
        """Kills a local kernel's process (its provisioner's kill); None for remote kernels."""
        if self.observer.remote:
            return None
        try:
            provisioner = self.observer.kernel_manager.get_kernel(kernel_id).provisioner
        except Exception:
            return None
        if provisioner is None:
            return None

        async def kill() -> None:
            try:
                await provisioner.kill()
            except Exception as error:  # the process may be gone already
                self.log.warning("auto-shutdown: killing kernel %s failed: %r", kernel_id, error)

        return kill

    async def remove_terminal(self, planned: Verdict) -> bool:
        observer = self.observer
        terminal_manager: Any = observer.terminal_manager()
        fresh = observer.read_terminal(planned.id)
        if terminal_manager is None or fresh is None:
            return False
        now = observer.clock()
        settings = self.store.current  # the settings in force now, as the removal runs
        verdict = terminal_verdict(fresh, settings, now, observer.kernels_remain(),
                                   observer.signals_now(now, settings.daily_stop))
        if not verdict.due:
            self.log.info("auto-shutdown: sparing terminal %s: %s", planned.id, verdict.reason)
            return False
        self.log.info(
            "auto-shutdown: removing terminal %s: idle for %.0f s (%s)",
            planned.id, verdict.idle_seconds or 0.0, verdict.reason,
        )
        await within(terminal_manager.terminate(planned.id, force=True), self.shutdown_timeout_seconds)
        self._record(verdict, f"terminal {planned.id} removed")
        return True

    def _record(self, verdict: Verdict, message: str) -> None:
        SHUTDOWNS.labels(verdict.kind, verdict.cause.value).inc()
        if self.events is not None:
            self.events.emit("culled", verdict.kind, verdict.id, message, reason=verdict.reason,
                             idle_seconds=verdict.idle_seconds)
