"""`jupyter autoshutdown hub-service`: the fleet as a JupyterHub service.

Run by the hub (a managed service, as jupyterhub-idle-culler is) or beside it (external, with
`--url`), in the hub's environment. It sweeps the fleet every `--cull-every` seconds (hub/fleet.py)
and serves under its prefix (`JUPYTERHUB_SERVICE_PREFIX`), to hub users allowed to access the
service (`access:services!service=<name>`; hub admins are), through hub OAuth or a token:

- `api/fleet`: the latest sweep as JSON (per server: user, server name, state, extension version
  or "missing", idle seconds, when it stops and why, what holds it; totals; the sweep's cost);
- `metrics`: Prometheus text (servers by state, held, culled, sweep duration and requests);
- the prefix itself: a page (hub/page.py) showing the fleet as a sortable table with its totals:
  servers running, held, stopping within the hour, server-hours stopped early this week.

The role it needs is in docs/platforms.md (JupyterHub).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from typing import Any
from urllib.parse import urlparse

from tornado import web

from ..core.hub_api import DEFAULT_PAGE_SIZE
from .fleet import FALLBACK_STATES, HELD, MANAGED, PENDING, Fleet, Options
from .page import PAGE_HTML

log = logging.getLogger("jupyter_autoshutdown.hub")
STATES = (MANAGED, HELD, *FALLBACK_STATES, PENDING)


def metrics_text(fleet: Fleet) -> str:
    """The Prometheus exposition of the latest sweep (written by hand: no registry needed)."""
    sweep = fleet.last
    lines = [
        "# HELP autoshutdown_fleet_servers Running servers by state in the latest sweep.",
        "# TYPE autoshutdown_fleet_servers gauge",
    ]
    counts = {state: 0 for state in STATES}
    for entry in sweep.entries if sweep else []:
        counts[entry.state] = counts.get(entry.state, 0) + 1
    lines += [f'autoshutdown_fleet_servers{{state="{state}"}} {count}' for state, count in counts.items()]
    lines += [
        "# HELP autoshutdown_fleet_culled_total Servers the service stopped, by why.",
        "# TYPE autoshutdown_fleet_culled_total counter",
        *[f'autoshutdown_fleet_culled_total{{reason="{reason}"}} {count}'
          for reason, count in sorted(fleet.culled_total.items())],
        "# HELP autoshutdown_fleet_sweep_seconds Wall time of the latest sweep.",
        "# TYPE autoshutdown_fleet_sweep_seconds gauge",
        f"autoshutdown_fleet_sweep_seconds {sweep.duration_seconds if sweep else 0:.6f}",
        "# HELP autoshutdown_fleet_sweep_hub_requests Hub API requests of the latest sweep.",
        "# TYPE autoshutdown_fleet_sweep_hub_requests gauge",
        f"autoshutdown_fleet_sweep_hub_requests {sweep.hub_requests if sweep else 0}",
        "# HELP autoshutdown_fleet_sweep_status_requests Status reads through the proxy of the latest sweep.",
        "# TYPE autoshutdown_fleet_sweep_status_requests gauge",
        f"autoshutdown_fleet_sweep_status_requests {sweep.status_requests if sweep else 0}",
    ]
    return "\n".join(lines) + "\n"


def make_app(fleet: Fleet, prefix: str, hub_auth: Any) -> web.Application:
    """The service's routes; `hub_auth` a jupyterhub HubOAuth (None: no authentication, tests
    of the handlers alone only)."""
    from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated

    class FleetHandler(HubOAuthenticated, web.RequestHandler):
        def initialize(self, **_: Any) -> None:
            self.hub_auth = hub_auth

        @web.authenticated
        def get(self) -> None:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(fleet.summary()))

    class MetricsHandler(FleetHandler):
        @web.authenticated
        def get(self) -> None:
            self.set_header("Content-Type", "text/plain; version=0.0.4")
            self.finish(metrics_text(fleet))

    class PageHandler(FleetHandler):
        @web.authenticated
        def get(self) -> None:
            self.set_header("Content-Type", "text/html; charset=utf-8")
            # The page runs only its own inline script and reads api/fleet beside it.
            self.set_header("Content-Security-Policy",
                            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                            "connect-src 'self'; frame-ancestors 'self'")
            self.finish(PAGE_HTML)

    class CallbackHandler(HubOAuthCallbackHandler):
        def initialize(self, **_: Any) -> None:
            self.hub_auth = hub_auth

    prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
    return web.Application([
        (prefix, PageHandler),
        (prefix + "api/fleet", FleetHandler),
        (prefix + "metrics", MetricsHandler),
        (prefix + "oauth_callback", CallbackHandler),
    ], cookie_secret=os.urandom(32), login_url=hub_auth.login_url if hub_auth is not None else prefix)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jupyter autoshutdown hub-service",
        description="A JupyterHub service over the fleet: shows every server's auto-shutdown state "
                    "(api/fleet, metrics) and stops servers without a working extension by the "
                    "hub's last_activity (the idle-culler's rule, as a fallback).")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds: stop a server without a working extension (none, not "
                             "answering, stale checker) idle this long by the hub's last_activity; "
                             "0: never (default 3600)")
    parser.add_argument("--cull-every", type=float, default=0.0,
                        help="seconds between sweeps (default: half the timeout, at most 600, at least 1)")
    parser.add_argument("--max-age", type=float, default=0.0,
                        help="seconds: stop any server running this long unless it is held "
                             "(default 0: never)")
    parser.add_argument("--cull-users", action="store_true",
                        help="delete users all of whose servers were stopped by the service")
    parser.add_argument("--no-cull-admin-users", dest="cull_admin_users", action="store_false",
                        help="with --cull-users, keep admin users")
    parser.add_argument("--remove-named-servers", action="store_true",
                        help="remove named servers instead of only stopping them")
    parser.add_argument("--no-cull-default-servers", dest="cull_default_servers", action="store_false")
    parser.add_argument("--no-cull-named-servers", dest="cull_named_servers", action="store_false")
    parser.add_argument("--stale-after", type=float, default=600.0,
                        help="seconds: a checker with no pass for this long is not trusted (default 600)")
    parser.add_argument("--concurrency", type=int, default=10,
                        help="requests in flight at most, to the hub API and through the proxy (default 10)")
    parser.add_argument("--request-timeout", type=float, default=10.0,
                        help="seconds per request (default 10)")
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE,
                        help="users per page of the hub's user list (the hub caps it)")
    parser.add_argument("--read-via", choices=("direct", "proxy"), default="direct",
                        help="read each server's status at its proxy target (default; needs the "
                             "'proxy' scope), or through the proxy, which the hub then counts as the "
                             "server's activity")
    parser.add_argument("--dry-run", action="store_true", help="show, stop nothing")
    parser.add_argument("--api-url", default=os.environ.get("JUPYTERHUB_API_URL"),
                        help="the hub API (default: $JUPYTERHUB_API_URL)")
    parser.add_argument("--proxy-url", default=os.environ.get("JUPYTERHUB_PUBLIC_URL"),
                        help="where servers are reached through the hub's proxy, e.g. http://proxy-public "
                             "(default: $JUPYTERHUB_PUBLIC_URL, else the API URL's origin)")
    parser.add_argument("--url", default=os.environ.get("JUPYTERHUB_SERVICE_URL"),
                        help="where to listen (default: $JUPYTERHUB_SERVICE_URL; none: sweep only)")
    parser.add_argument("--prefix", default=os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/"),
                        help="the service's path prefix (default: $JUPYTERHUB_SERVICE_PREFIX)")
    return parser


def options_from(args: argparse.Namespace) -> Options:
    return Options(
        timeout_seconds=args.timeout, max_age_seconds=args.max_age, cull_users=args.cull_users,
        cull_admin_users=args.cull_admin_users, remove_named_servers=args.remove_named_servers,
        cull_default_servers=args.cull_default_servers, cull_named_servers=args.cull_named_servers,
        stale_seconds=args.stale_after, concurrency=args.concurrency,
        request_timeout_seconds=args.request_timeout, page_size=args.page_size, dry_run=args.dry_run,
        read_via=args.read_via,
    )


async def run(args: argparse.Namespace) -> None:
    token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    if not args.api_url or not token:
        raise SystemExit("hub-service: needs JUPYTERHUB_API_URL (or --api-url) and JUPYTERHUB_API_TOKEN")
    api = urlparse(args.api_url)
    proxy_url = args.proxy_url or f"{api.scheme}://{api.netloc}"
    options = options_from(args)
    fleet = Fleet(api_url=args.api_url, proxy_url=proxy_url, token=token, options=options, log=log)
    every = args.cull_every or max(1.0, min(600.0, (options.timeout_seconds or 1200.0) / 2))
    if args.url:
        from jupyterhub.services.auth import HubOAuth

        hub_auth = HubOAuth(api_token=token, api_url=args.api_url, cache_max_age=60)
        listen = urlparse(args.url)
        make_app(fleet, args.prefix, hub_auth).listen(listen.port or 80, listen.hostname or "")
        log.info("hub-service: serving %sapi/fleet and %smetrics on %s", args.prefix, args.prefix, args.url)
    log.info("hub-service: sweeping every %g s (timeout %g s, max age %g s, concurrency %d%s)", every,
             options.timeout_seconds, options.max_age_seconds, options.concurrency,
             ", dry run" if options.dry_run else "")
    while True:
        sweep = await fleet.sweep()
        log.info("hub-service: swept %d servers in %.2f s (%d hub requests, %d status reads)%s",
                 len(sweep.entries), sweep.duration_seconds, sweep.hub_requests, sweep.status_requests,
                 f"; error: {sweep.error}" if sweep.error else "")
        # A fixed period, as jupyterhub-idle-culler keeps: the sweep's own time is not added to it.
        await asyncio.sleep(max(0.0, every - sweep.duration_seconds))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
