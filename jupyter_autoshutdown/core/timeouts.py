"""Time limits that a cancellation always wins against, and the retry delay after failures.

Python 3.10-3.11's ``asyncio.wait_for`` swallows a cancellation that arrives in the loop step in
which its inner call finishes (fixed in 3.12): the task that was cancelled keeps running, and
whoever awaits it (the server stopping) waits for ever. ``asyncio.wait`` has no such race.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

#: How long a timed-out call gets to honour its cancellation before we report the time-out, so
#: that a report of "timed out" means the call has stopped (unless it ignores cancellation).
CANCEL_GRACE_SECONDS = 1.0


async def within(work: Awaitable[T], seconds: float) -> T:
    """`await work` for at most `seconds`; on time out cancel it and raise asyncio.TimeoutError.

    A cancelled call gets up to CANCEL_GRACE_SECONDS to unwind (its ``finally`` blocks run before
    the time-out is reported); one that ignores its cancellation is left behind, never awaited.
    """
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task not in done:
        # Not awaited: a call that ignores its cancellation must not hold us past the limit.
        task.cancel()
        task.add_done_callback(_retrieve)
        await asyncio.wait({task}, timeout=CANCEL_GRACE_SECONDS)
        raise asyncio.TimeoutError
    return task.result()


def _retrieve(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


def backoff_seconds(failures: int, first_seconds: float = 5.0, max_seconds: float = 300.0) -> float:
    """How long to wait after the `failures`-th failure in a row: doubling from `first_seconds`,
    at most `max_seconds`."""
    return min(max_seconds, first_seconds * 2 ** max(0, failures - 1))
