"""Stage 3, act: run each pass and carry out its plan without making the loop wait.

Owns the loop (`monitor`: observe, decide, dispatch, publish, sleep until the next deadline),
the executor of tracked shutdown tasks (`executor`) and its jobs (`shutdown_jobs`: re-check,
shut down, kill past the limit), the app action's runner (`app_runner`), the save barrier
before it (`documents`), warnings and dry-run reports (`notices`), and the platform idle
signals kept true to our rules (`studio_signal`). The app actions themselves live in the public
package `jupyter_autoshutdown.actions`, where custom actions import their interface from.

Imports: `core`, `observe`, `decide`, `actions`.
"""
