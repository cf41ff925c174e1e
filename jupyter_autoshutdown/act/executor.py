"""Runs shutdowns and the app action as tracked tasks, so the check loop never waits for them.

Each target (a kernel, a terminal, the app) has at most one job at a time. Kernel and terminal
jobs share a bounded concurrency; the app action has its own slot. A job that fails is retried
later with exponential backoff; the failure is logged, kept for `status`, counted and emitted as
an event (an app action that defers is not a failure: act/app_runner.py keeps its time). When a job
ends, the monitor is woken: a kernel gone may make terminals or the app action due. A finished
job is forgotten at once.

A shutdown that takes longer than its limit is not cancelled midway: cancelling jupyter_client's
shutdown leaves the kernel manager with a half-finished shutdown that every later call trips over
(`InvalidStateError`). Instead the kernel's process is killed and the shutdown finishes by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..core.records import APP_KEY, ResourceKey, ident_of, kind_of
from ..core.telemetry import FAILURES, ErrorLog, Events
from ..core.timeouts import backoff_seconds

BACKOFF_FIRST_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 300.0
#: After a kill, how long the interrupted shutdown may take to notice and clean up.
KILL_GRACE_SECONDS = 5.0

Key = ResourceKey  # a kernel's id, "t:<terminal name>", or APP_KEY (core/records.py)


@dataclass
class Failure:
    attempts: int
    retry_at: datetime


class Executor:
    def __init__(
        self,
        *,
        max_concurrent: int,
        clock: Callable[[], datetime],
        log: logging.Logger,
        on_done: Callable[[], None],
        errors: ErrorLog,
        action_name: str,
        events: Events | None = None,
    ) -> None:
        self.max_concurrent = max(1, max_concurrent)
        self.clock = clock
        self.log = log
        self._on_done = on_done
        self.errors = errors
        self.action_name = action_name
        self.events = events
        self.failures: dict[Key, Failure] = {}
        self._jobs: dict[Key, asyncio.Task[bool]] = {}
        #: Shutdowns still finishing after their job gave up on them (see run_with_limit).
        self._stragglers: set[asyncio.Future[Any]] = set()
        self._semaphore = asyncio.Semaphore(self.max_concurrent)

    # ---- what may run ------------------------------------------------------------------------

    def running(self, key: Key) -> bool:
        job = self._jobs.get(key)
        return job is not None and not job.done()

    def ready(self, key: Key, now: datetime) -> bool:
        """Not running, and not waiting for a retry."""
        if self.running(key):
            return False
        failure = self.failures.get(key)
        return failure is None or now >= failure.retry_at

    def next_retry(self, now: datetime) -> datetime | None:
        """The earliest retry still to come (a past one is not a reason to wake again)."""
        upcoming = [f.retry_at for f in self.failures.values() if f.retry_at > now]
        return min(upcoming) if upcoming else None

    def forget(self, live: Collection[Key]) -> None:
        """Drop the failures of targets that no longer exist."""
        for gone in self.failures.keys() - set(live):
            del self.failures[gone]

    # ---- running jobs ----------------------------------------------------------------------

    def submit(self, key: Key, job: Callable[[], Awaitable[bool]]) -> bool:
        """Start `job` for `key` unless one runs already; True when started."""
        if self.running(key):
            return False
        kind, ident = kind_of(key), ident_of(key)
        self._jobs[key] = asyncio.create_task(
            self._run(key, job), name=f"jupyter_autoshutdown.{kind}.{ident or self.action_name}"
        )
        return True

    async def _run(self, key: Key, job: Callable[[], Awaitable[bool]]) -> bool:
        try:
            if key == APP_KEY:
                return await self._guarded(key, job)  # never waits behind kernel shutdowns
            async with self._semaphore:
                return await self._guarded(key, job)
        finally:
            # Forget the finished job: the table holds only what runs (nothing grows with the
            # server's age).
            if self._jobs.get(key) is asyncio.current_task():
                del self._jobs[key]
            self._on_done()

    async def _guarded(self, key: Key, job: Callable[[], Awaitable[bool]]) -> bool:
        kind, ident = kind_of(key), ident_of(key)
        try:
            done = await job()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            failure = self.failures.get(key)
            attempts = failure.attempts + 1 if failure else 1
            backoff = backoff_seconds(attempts, BACKOFF_FIRST_SECONDS, BACKOFF_MAX_SECONDS)
            self.failures[key] = Failure(attempts, self.clock() + timedelta(seconds=backoff))
            error_text = "timed out" if isinstance(error, asyncio.TimeoutError) else repr(error)
            target = f"{kind} {ident}" if ident else f"app action '{self.action_name}'"
            message = f"{target} failed ({error_text}); retrying in {backoff:g} s"
            self.log.warning("auto-shutdown: %s", message)
            self.errors.record(message)
            FAILURES.labels(kind).inc()
            if self.events is not None:
                self.events.emit("failure", kind, ident or self.action_name, message,
                                 retry_at=self.failures[key].retry_at)
            return False
        self.failures.pop(key, None)
        return done

    async def run_with_limit(
        self,
        work: Awaitable[Any],
        seconds: float,
        *,
        what: str,
        kill: Callable[[], Awaitable[None]] | None = None,
    ) -> bool:
        """Await `work` for at most `seconds`; then kill (when given) and let `work` finish.

        Returns True when it finished in time, False when it finished after the kill. Raises
        TimeoutError when it did not finish even then (it goes on in the background), or
        whatever `work` raised.
        """
        task = asyncio.ensure_future(work)
        try:
            done, _ = await asyncio.wait({task}, timeout=seconds)
        except asyncio.CancelledError:
            # The server is stopping. A kernel shutdown is left to finish (cancelling it midway is
            # what wedges a kernel); anything else stops with us.
            if kill is None:
                task.cancel()
            raise
        if task in done:
            task.result()
            return True
        if kill is None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise asyncio.TimeoutError
        self.log.warning("auto-shutdown: %s took longer than %g s; killing it", what, seconds)
        await kill()
        done, _ = await asyncio.wait({task}, timeout=KILL_GRACE_SECONDS)
        if task not in done:
            self._stragglers.add(task)
            task.add_done_callback(self._stragglers.discard)
            raise asyncio.TimeoutError
        task.result()
        message = f"{what} did not finish within {seconds:g} s (shutdown_timeout); its process was killed"
        self.log.warning("auto-shutdown: %s", message)
        self.errors.record(message)
        return False

    @property
    def jobs(self) -> dict[Key, asyncio.Task[bool]]:
        """The jobs running now (a copy)."""
        return dict(self._jobs)

    async def wait(self) -> list[bool]:
        """Wait for every running job; their results (for tests and benchmarks)."""
        jobs = [job for job in self._jobs.values() if not job.done()]
        return list(await asyncio.gather(*jobs)) if jobs else []

    async def stop(self) -> None:
        pending = [job for job in (*self._jobs.values(), *self._stragglers) if not job.done()]
        for job in pending:
            job.cancel()
        for job in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job
        self._jobs.clear()
