"""Stage 1, observe: read the server and what people do into a `Snapshot`, changing nothing.

Owns the readers of jupyter_server's kernel, session and terminal managers (`readers`), the
observer that holds all per-resource input state and builds each pass's snapshot (`observer`),
per-request busy tracking from the kernels' own messages (`running_requests`), people's activity
(`activity`), exempt kernels (`exemptions`), keep-alives (`keepalive`) and CPU/GPU utilization
(`utilization`).

Imports: `core` only. Never decides (that is `decide`) and never acts (that is `act`).
"""
