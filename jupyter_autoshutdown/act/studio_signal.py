"""A platform's own idle signal, kept true to our rules: SageMaker Studio's activity file.

Studio's native idle shutdown for JupyterLab spaces asks jupyter-activity-monitor-extension
(``GET <base_url>api/idle``), which takes the latest of the sessions' kernels' and the terminals'
``last_activity`` and of the time in ``/tmp/.sagemaker-last-active-timestamp``. A cell that runs
without output leaves its kernel's ``last_activity`` at the cell's start, and a person editing
files with no kernel is idle to it: Studio then stops the space under a running cell, or while
someone works.

This writer puts into that file, after each check pass (`Monitor.on_publish`), the moment the app
was last active by this extension's rules (people, kernels, terminals; policy.app_activity), and
"now", refreshed every REFRESH_SECONDS, while something holds the app (a kernel running a request,
an exempt kernel, a keep-alive). The file is written atomically (a temporary file renamed over it)
and never moved earlier than what it holds, whoever wrote that. The writing runs in a worker
thread: the event loop never waits for a disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..core.telemetry import ErrorLog
from .monitor import PassResult

#: Studio's file, and the format jupyter-activity-monitor-extension parses (UTC, no offset).
SAGEMAKER_ACTIVITY_FILE = "/tmp/.sagemaker-last-active-timestamp"
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
#: While something holds the app, "now" is written at least this often (Studio checks each minute).
REFRESH_SECONDS = 30.0


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> datetime | None:
    try:
        return datetime.strptime(text.strip(), TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def write_unless_later(path: Path, moment: datetime) -> datetime:
    """Write `moment` to `path` atomically unless the file already holds a later time; returns
    what the file holds afterwards. Blocking: run it in a worker thread."""
    try:
        held = parse_timestamp(path.read_text())
    except OSError:
        held = None
    if held is not None and held >= moment:
        return held
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w") as stream:
            stream.write(format_timestamp(moment))
        os.chmod(temporary, 0o644)  # mkstemp makes it 0600; Studio's reader may be another user
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return moment


@dataclass(frozen=True)
class Written:
    """The writer's last outcome, for `status`."""

    at: datetime
    #: What the file holds after the write (a later time someone else wrote wins).
    value: datetime | None
    held_by: str
    error: str | None = None


class ActivityFile:
    def __init__(self, path: Path, *, clock: Callable[[], datetime], log: logging.Logger,
                 errors: ErrorLog, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.path = path
        self.clock = clock
        self.log = log
        self.errors = errors
        self.refresh_seconds = refresh_seconds
        self.last: Written | None = None
        self._result: PassResult | None = None
        self._published = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def published(self, result: PassResult) -> None:
        """The monitor's listener: a new pass result to write from."""
        self._result = result
        self._published.set()

    def start(self) -> None:
        if self._task is None or self._task.done():
            if self._result is not None:
                self._published.set()
            self._task = asyncio.create_task(self._loop(), name="jupyter_autoshutdown.act.studio_signal")

    async def stop(self, timeout_seconds: float = 5.0) -> None:
        """Cancel the writer and wait for it, boundedly: stopping the server never hangs on it."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        _, pending = await asyncio.wait({task}, timeout=timeout_seconds)
        if pending:
            self.log.warning("auto-shutdown: the activity file writer did not stop within %g s",
                             timeout_seconds)

    async def _loop(self) -> None:
        while True:
            waiter = asyncio.ensure_future(self._published.wait())
            try:
                await asyncio.wait({waiter}, timeout=self.refresh_seconds)
            finally:
                waiter.cancel()
            self._published.clear()
            await self.write_once()

    def due_value(self) -> tuple[datetime, str] | None:
        """What the file should hold now, from the latest pass; None before the first pass."""
        activity = self._result.activity if self._result is not None else None
        if activity is None:
            return None
        return (self.clock() if activity.held_by else activity.last_active), activity.held_by

    async def write_once(self) -> None:
        due = self.due_value()
        if due is None:
            return
        moment, held_by = due
        last = self.last
        if last is not None and last.error is None and last.value is not None and last.value >= moment:
            return  # nothing new (an unchanged last activity is not written again)
        try:
            value = await asyncio.to_thread(write_unless_later, self.path, moment)
        except Exception as error:  # the checker never dies for a file
            message = f"writing the activity file {self.path} failed: {error!r}"
            if last is None or last.error != message:
                self.log.warning("auto-shutdown: %s", message)
                self.errors.record(message)
            self.last = Written(self.clock(), None, held_by, message)
            return
        self.last = Written(self.clock(), value, held_by)
