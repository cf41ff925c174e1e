"""App actions for tests, loaded by import path like a user's own action would be."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timezone
from typing import ClassVar

from jupyter_autoshutdown.actions import ActionContext


class TrackedAction:
    """Records each run's start time and the most runs seen at once; subclasses say what a run does."""

    name = "tracked"
    calls: ClassVar[list[datetime]]
    running: ClassVar[int]
    max_running: ClassVar[int]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.calls, cls.running, cls.max_running = [], 0, 0  # each action counts its own runs

    async def run(self, context: ActionContext) -> str:
        cls = type(self)
        cls.running += 1
        cls.max_running = max(cls.max_running, cls.running)
        try:
            cls.calls.append(datetime.now(timezone.utc))
            return await self.act(context)
        finally:
            cls.running -= 1

    async def act(self, context: ActionContext) -> str:
        raise NotImplementedError


class RecordingAction(TrackedAction):
    name = "recording"

    async def act(self, context: ActionContext) -> str:
        await asyncio.sleep(0)
        return f"recorded after {context.idle_seconds:.1f} s idle"


class FailingOnceAction(TrackedAction):
    """Fails its first run, succeeds after."""

    name = "failing-once"

    async def act(self, context: ActionContext) -> str:
        await asyncio.sleep(0.05)
        if len(FailingOnceAction.calls) == 1:
            raise RuntimeError("injected app action failure")
        return "succeeded on retry"


class HangingAction(TrackedAction):
    """Never finishes by itself: only the app action timeout ends it."""

    name = "hanging"

    async def act(self, context: ActionContext) -> str:
        await asyncio.Event().wait()
        return "unreachable"


class SlowAction(TrackedAction):
    """Takes 20 s, as stopping a VM or deleting a Studio app can."""

    name = "slow"
    release: ClassVar[asyncio.Event | None] = None

    async def act(self, context: ActionContext) -> str:
        SlowAction.release = asyncio.Event()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(SlowAction.release.wait(), timeout=20)
        return "slow action done"
