"""A tiny timeout set at run time never locks a person out: after every start the app action waits
the start-up grace (a real server process, stopped by its own `server` action)."""

from __future__ import annotations

import time

import requests
from server_process import ServerProcess

#: Short enough to watch the grace end in a test; the default is 5 minutes.
GRACE_MINUTES = 0.15
GRACE_ARGS = ("--AutoShutdown.app_action=server", "--AutoShutdown.max_check_interval=0.5",
              "--AutoShutdown.warning_minutes=0", f"--AutoShutdown.startup_grace_minutes={GRACE_MINUTES}")


def exits_within(server: ServerProcess, seconds: float) -> bool:
    try:
        server.process.wait(seconds)
    except Exception:
        return False
    return True


def test_a_one_second_timeout_kept_across_a_restart_leaves_time_to_change_it(home):
    first = ServerProcess(home, *GRACE_ARGS)
    try:
        answer = first.request("PATCH", "autoshutdown/api/settings", json={"idle_timeout_minutes": 1 / 60})
        assert answer.status_code == 200 and answer.json()["persisted"] is True
        # Before the grace it stood for, this stopped the server a second later.
        assert not exits_within(first, 3), "the server stopped within the start-up grace"
    finally:
        first.stop()

    # The same command again: the saved 1-second timeout applies, and the server can be reached.
    restarted = ServerProcess(home, *GRACE_ARGS)
    started = time.monotonic()
    try:
        status = restarted.request("GET", "autoshutdown/api/status").json()
        assert "start-up grace" in status["app"]["reason"], status["app"]
        assert restarted.request("GET", "autoshutdown/api/settings").json()["idle_timeout_minutes"] == 1 / 60
        # Left alone, it stops once the grace is over, not before.
        assert exits_within(restarted, GRACE_MINUTES * 60 + 20), "the app action never ran"
        assert time.monotonic() - started >= GRACE_MINUTES * 60 - 1
    finally:
        restarted.stop()

    # A person reaches it within the grace and sets a sensible timeout: it keeps running.
    fixed = ServerProcess(home, *GRACE_ARGS)
    try:
        answer = fixed.request("PATCH", "autoshutdown/api/settings", json={"idle_timeout_minutes": 10})
        assert answer.status_code == 200
        assert not exits_within(fixed, GRACE_MINUTES * 60 + 3), "stopped although the timeout is 10 min"
        assert fixed.request("GET", "api/status").status_code == 200
    except requests.ConnectionError as error:
        raise AssertionError(f"the server went away:\n{fixed.output()[-2000:]}") from error
    finally:
        fixed.stop()
