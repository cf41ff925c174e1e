"""Mutation check: remove one protection at a time and confirm its test fails.

Not collected by pytest (no test_ prefix). Run from the repository root, on a clean tree:

    python tests/mutation_check.py

`--list` only checks that every protected text is still where the mutation looks for it (seconds;
tests/test_layout.py runs it, so a move or an edit cannot leave a mutation aimed at nothing).

Each mutation is applied to the working tree, the named tests run, and the file is restored with
`git checkout`. It prints CAUGHT or MISSED per mutation and exits 1 if any was missed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# (what is removed, file, text, replacement, tests that must then fail)
MUTATIONS = [
    ("re-check before shutdown removed", "jupyter_autoshutdown/act/shutdown_jobs.py",
     '            if not verdict.due:\n                self.log.info("auto-shutdown: sparing kernel',
     '            if False:\n                self.log.info("auto-shutdown: sparing kernel',
     ["tests/test_kernels.py::test_kernel_that_turns_busy_after_the_decision_is_spared",
      "tests/test_races.py::test_settings_changed_after_the_decision_take_effect_at_the_recheck"]),
    ("own routes count as activity", "jupyter_autoshutdown/serve/mixin.py",
     "    _track_activity = False", "    _track_activity = True",
     ["tests/test_terminals_and_app.py::test_polling_our_routes_is_not_activity"]),
    ("no backoff after a failure", "jupyter_autoshutdown/act/executor.py",
     "        return failure is None or now >= failure.retry_at", "        return True",
     ["tests/test_faults.py::"
      "test_hanging_shutdown_times_out_the_rest_are_culled_and_it_is_retried_with_backoff"]),
    ("unreadable manager counts as empty", "jupyter_autoshutdown/decide/policy.py",
     "    if snapshot.errors:\n        # Some kernel", "    if False:\n        # Some kernel",
     ["tests/test_faults.py::test_unreadable_kernels_never_count_as_none_left"]),
    ("state file written in place, not atomically", "jupyter_autoshutdown/core/settings.py",
     "            os.replace(tmp_name, self.path)",
     "            self.path.write_text(Path(tmp_name).read_text())",
     ["tests/test_races.py::test_sigkill_while_writing_never_leaves_a_corrupt_state_file"]),
    ("busy kernels treated as idle", "jupyter_autoshutdown/decide/policy.py",
     '    if state == "busy" and not settings.cull_busy:', "    if False:",
     ["tests/test_kernels.py::test_busy_kernel_is_spared_and_culled_after_it_finishes",
      "tests/test_policy.py"]),
    ("validation accepts negative minutes", "jupyter_autoshutdown/core/settings.py",
     "    if minutes < 0:", "    if False:",
     ["tests/test_rest_api.py", "-k", "bad_input and idle_checker"]),
]


def stale() -> list[str]:
    """The mutations whose protected text is not in their file any more."""
    return [label for label, path, old, _new, _tests in MUTATIONS
            if not Path(path).exists() or old not in Path(path).read_text()]


def main() -> int:
    if "--list" in sys.argv:
        for label in stale():
            print(f"STALE   {label}")
        return 1 if stale() else 0
    missed = 0
    for label, path, old, new, tests in MUTATIONS:
        source = Path(path)
        text = source.read_text()
        if old not in text:
            print(f"STALE   {label}: the protected code changed; update this mutation")
            missed += 1
            continue
        source.write_text(text.replace(old, new, 1))
        try:
            result = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                capture_output=True, text=True, timeout=600,
            )
        finally:
            subprocess.run(["git", "checkout", "--", path], check=True)
        summary = [line for line in result.stdout.splitlines()
                   if " passed" in line or " failed" in line]
        caught = result.returncode != 0
        missed += not caught
        outcome = summary[-1] if summary else f"exit code {result.returncode}"
        print(f"{'CAUGHT' if caught else 'MISSED'}  {label}: {outcome}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
