"""The light stand-ins of benchmarks/hub_fleet.py: single-user servers, and a request counter.

- `StandInSpawner`: the hub's spawner (`c.JupyterHub.spawner_class`, loaded by the hub from this
  file's folder on its PYTHONPATH). `start()` returns the URL of ONE shared stand-in process for
  every server; `poll()` says running until `stop()`. A spawn request's options
  `{"idle_seconds": s}` back-date the server's `last_activity` by s seconds, so that the server
  becomes due under a known `--timeout` at a known time.
- `python benchmarks/hub_fleet_standin.py servers --port P`: the stand-in for every single-user
  server. It answers the hub's readiness check (any path: 200) and
  `/user/<name>/autoshutdown/api/status` with a status like the extension's (every 10th server is
  held by a busy kernel); users named `due-*` answer 404 there (no extension). It records when
  each status request came and was answered.
- `python benchmarks/hub_fleet_standin.py counter --port P --target URL`: forwards every request to
  the hub API at URL and records each one (method, path, start, end, code): how the tools' hub API
  requests are counted, the same way for both. It keeps the client's Host header, so that the
  hub's pagination links (`_pagination.next.url`, built from it) lead back through the counter.

Both servers show their records at `GET /__bench__/log` and forget them at `POST /__bench__/clear`.
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from datetime import datetime, timedelta, timezone
from typing import Any

from tornado import httpclient, ioloop, web

STATUS_SUFFIX = "/autoshutdown/api/status"
DUE_PREFIX = "due-"
RECORDS: list[list[Any]] = []


class LogHandler(web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(RECORDS))

    def post(self) -> None:
        RECORDS.clear()
        self.finish("{}")


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def status_of(user: str, now: datetime) -> dict[str, Any]:
    """A status shaped like the extension's `autoshutdown/api/status` (the fields the service reads)."""
    held = zlib.crc32(user.encode()) % 10 == 0
    kernel = {"id": f"k-{user}", "name": "python3", "execution_state": "busy" if held else "idle",
              "connections": 1, "last_activity": _iso(now - timedelta(seconds=60)), "exempt": False,
              "keep_alive_until": None, "idle_seconds": 0 if held else 600.0,
              "shutdown_at": None if held else _iso(now + timedelta(seconds=3000)),
              "reason": "running code" if held else "idle"}
    return {
        "version": "stand-in", "running": True, "count": 120, "last_check": _iso(now - timedelta(seconds=5)),
        "kernels": [kernel], "terminals": [], "keep_alive_until": None,
        "app": {"action_at": None if held else _iso(now + timedelta(seconds=3300)),
                "idle_seconds": 0.0 if held else 300.0,
                "reason": "a kernel is running code" if held else "idle: no kernels busy, nobody active",
                "requests_in_flight": []},
        "hub_activity": {"held_by": f"kernel k-{user} is running code" if held else None,
                         "reported_at": _iso(now - timedelta(seconds=10))},
    }


class ServerHandler(web.RequestHandler):
    """Every path of every stand-in server."""

    def get(self, path: str) -> None:
        started = time.time()
        if not path.endswith(STATUS_SUFFIX):
            self.finish("{}")  # the hub's readiness check, anything else
            return
        user = path.split("/user/", 1)[-1].split("/", 1)[0]
        if user.startswith(DUE_PREFIX):
            self.set_status(404)
            self.finish('{"message": "Not Found"}')
            code = 404
        else:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(status_of(user, datetime.now(timezone.utc))))
            code = 200
        RECORDS.append([started, time.time(), "GET", path, code])


class ForwardHandler(web.RequestHandler):
    """Forwards a request to the hub and records it."""

    SUPPORTED_METHODS = ("GET", "POST", "DELETE", "PATCH", "PUT")

    def initialize(self, target: str) -> None:
        self.target = target

    async def _forward(self) -> None:
        started = time.time()
        method = self.request.method or "GET"
        headers = {key: value for key, value in self.request.headers.get_all()
                   if key.lower() not in ("content-length", "transfer-encoding", "connection")}
        request = httpclient.HTTPRequest(
            self.target + self.request.uri, method=method, headers=headers,
            body=self.request.body if self.request.body or method in ("POST", "PATCH", "PUT") else None,
            allow_nonstandard_methods=True, follow_redirects=False, request_timeout=300,
        )
        response = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        self.set_status(response.code if response.code != 599 else 502)
        for key in ("Content-Type", "Location"):
            if key in response.headers:
                self.set_header(key, response.headers[key])
        if response.body and response.code not in (204, 304):
            self.write(response.body)
        RECORDS.append([started, time.time(), method, self.request.path, response.code])
        self.finish()

    get = post = delete = patch = put = _forward


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=("servers", "counter"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", default="")
    args = parser.parse_args()
    routes: list[Any] = [(r"/__bench__/log", LogHandler)]
    if args.role == "servers":
        routes.append((r"(.*)", ServerHandler))
    else:
        httpclient.AsyncHTTPClient.configure(None, max_clients=64)
        routes.append((r".*", ForwardHandler, {"target": args.target.rstrip("/")}))
    web.Application(routes, log_function=lambda handler: None).listen(args.port, "127.0.0.1")
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
else:  # imported by the hub: the spawner
    from jupyterhub.spawner import Spawner
    from traitlets import Unicode

    class StandInSpawner(Spawner):
        """Every server is the one stand-in process at `standin_url`."""

        standin_url = Unicode(config=True, help="where the stand-in servers process listens")

        _running = False

        async def start(self) -> str:
            idle_seconds = float((self.user_options or {}).get("idle_seconds") or 0)
            if idle_seconds:  # the hub set it to now just before start(): back-date it
                self.orm_spawner.last_activity -= timedelta(seconds=idle_seconds)
                self.db.commit()  # at once: the hub commits its session later, or rolls it back
            self._running = True
            return self.standin_url

        async def poll(self) -> int | None:
            return None if self._running else 0

        async def stop(self, now: bool = False) -> None:
            self._running = False
