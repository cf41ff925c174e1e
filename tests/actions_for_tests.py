"""An app action for tests, loaded by import path like a user's own action would be."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from jupyter_autoshutdown.actions import ActionContext


class RecordingAction:
    name = "recording"
    calls: list[datetime] = []
    running = 0
    max_running = 0

    async def run(self, context: ActionContext) -> str:
        RecordingAction.running += 1
        RecordingAction.max_running = max(RecordingAction.max_running, RecordingAction.running)
        try:
            RecordingAction.calls.append(datetime.now(timezone.utc))
            await asyncio.sleep(0)
            return f"recorded after {context.idle_seconds:.1f} s idle"
        finally:
            RecordingAction.running -= 1


class FailingOnceAction:
    """Fails its first run, succeeds after."""

    name = "failing-once"
    calls: list[datetime] = []
    running = 0
    max_running = 0

    async def run(self, context: ActionContext) -> str:
        cls = FailingOnceAction
        cls.running += 1
        cls.max_running = max(cls.max_running, cls.running)
        try:
            cls.calls.append(datetime.now(timezone.utc))
            await asyncio.sleep(0.05)
            if len(cls.calls) == 1:
                raise RuntimeError("injected app action failure")
            return "succeeded on retry"
        finally:
            cls.running -= 1


class HangingAction:
    """Never finishes by itself: only the app action timeout ends it."""

    name = "hanging"
    calls: list[datetime] = []
    running = 0
    max_running = 0

    async def run(self, context: ActionContext) -> str:
        cls = HangingAction
        cls.running += 1
        cls.max_running = max(cls.max_running, cls.running)
        try:
            cls.calls.append(datetime.now(timezone.utc))
            await asyncio.Event().wait()
            return "unreachable"
        finally:
            cls.running -= 1
