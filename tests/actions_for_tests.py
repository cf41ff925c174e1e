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
