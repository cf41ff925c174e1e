"""The `command` action: run a configured command, e.g. `sudo shutdown -h now` on a VM.

The command runs without a shell (use ``sh -c '...'`` for shell syntax), in its own process group,
with stdin closed. Its output is logged; a non-zero exit status is a failure, retried with backoff.
When the monitor's `app_action_timeout` cancels it, the whole process group is killed.

The exit status is the command's answer: a stop script that starts its work in the background and
exits 0 has succeeded, and runs once. Its output goes to an anonymous temporary file, not a pipe,
because a pipe is held open by every process the command leaves behind, and waiting for the end
of the output would wait for them (and call the command "timed out", kill them and run it again).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import tempfile
from typing import IO, TYPE_CHECKING

from ..core.timeouts import within

if TYPE_CHECKING:
    from .base import ActionContext, ActionSettings

#: Characters of the command's output kept in the result and the log.
OUTPUT_TAIL_CHARS = 2000


class CommandFailed(Exception):
    """The command exited with a non-zero status."""


def _read_tail(output_file: IO[bytes]) -> bytes:
    """The end of what the command wrote (UTF-8 takes at most 4 bytes a character)."""
    size = output_file.seek(0, os.SEEK_END)
    output_file.seek(max(0, size - 4 * OUTPUT_TAIL_CHARS - 4))
    return output_file.read()


def _tail(output: bytes) -> str:
    text = output.decode(errors="replace").strip()
    return text if len(text) <= OUTPUT_TAIL_CHARS else "..." + text[-OUTPUT_TAIL_CHARS:]


class RunCommand:
    name = "command"

    def __init__(self, settings: ActionSettings) -> None:
        if not settings.command:
            raise ValueError(
                "app action 'command' needs a command: set AutoShutdown.app_command, "
                "e.g. 'sudo shutdown -h now'"
            )
        self.argv = tuple(settings.command)
        self.display = shlex.join(self.argv)

    async def run(self, context: ActionContext) -> str:
        env = {
            **os.environ,
            "AUTOSHUTDOWN_IDLE_SECONDS": f"{context.idle_seconds:.0f}",
            "AUTOSHUTDOWN_IDLE_TIMEOUT_SECONDS": f"{context.idle_timeout_seconds:.0f}",
        }
        output_file = await asyncio.to_thread(tempfile.TemporaryFile)
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output_file,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group, so a timeout can stop all of it
            )
            try:
                await process.wait()
            except BaseException:
                # Cancelled (app_action_timeout) or the server is stopping: leave nothing running.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                with contextlib.suppress(Exception):
                    await within(process.wait(), 5)
                raise
            output = await asyncio.to_thread(_read_tail, output_file)
        finally:
            output_file.close()
        tail = _tail(output)
        context.log.info(
            "auto-shutdown: command %s exited with status %s%s",
            self.display, process.returncode, f"; output:\n{tail}" if tail else "",
        )
        if process.returncode != 0:
            raise CommandFailed(f"{self.display} exited with status {process.returncode}: {tail}")
        return f"{self.display} exited with status 0" + (f": {tail}" if tail else "")
