"""The hub service (`jupyter autoshutdown hub-service`): a JupyterHub service over the fleet.

Owns listing every running server through the hub API (paged, named servers too), reading each
one's `autoshutdown/api/status` through the hub's proxy (`fleet`), the fallback culling of servers
without a working extension by the hub's `last_activity`, and what it serves under its prefix:
`api/fleet` and Prometheus `metrics` (`service`). It runs in the hub's environment, never inside a
user's server, and reads the servers' status as JSON: it imports nothing of the server extension.

Imports: core only.
"""
