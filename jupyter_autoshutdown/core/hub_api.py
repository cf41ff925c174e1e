"""JupyterHub's REST API as our clients read it: the paginated user list and the servers in it.

Pure (no I/O): the command line (`fleet --hub-url`, blocking requests) and the hub service (hub/,
tornado) each send the requests; both page and read servers the same way here.

JupyterHub 2+ pages `GET /hub/api/users`: with `Accept: application/jupyterhub-pagination+json` it
answers `{"items": [...], "_pagination": {"offset", "limit", "total", "next": {"offset", "limit",
"url"} | null}}`, and without it one page of `api_page_max_limit` users as a bare list, which
silently misses the rest on a large hub. Older hubs answer a bare list of everyone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode

PAGINATION_MEDIA_TYPE = "application/jupyterhub-pagination+json"
#: Users per page we ask for; the hub caps it at its `api_page_max_limit`.
DEFAULT_PAGE_SIZE = 200


def users_url(api_url: str, *, state: str = "ready", offset: int = 0, limit: int = DEFAULT_PAGE_SIZE) -> str:
    """One page of the user list; `api_url` ends with `/hub/api`. `state` "ready": users with a
    running server; "" lists everyone."""
    query: dict[str, Any] = {"offset": offset, "limit": limit}
    if state:
        query["state"] = state
    return f"{api_url.rstrip('/')}/users?{urlencode(query)}"


def read_users_page(body: Any) -> tuple[list[dict[str, Any]], int | None]:
    """The users of one answer and the offset of the next page (None: this was the last)."""
    if isinstance(body, list):
        return [user for user in body if isinstance(user, dict)], None
    if not isinstance(body, Mapping) or not isinstance(body.get("items"), list):
        raise ValueError(f"not a JupyterHub user list: {str(body)[:200]}")
    following = (body.get("_pagination") or {}).get("next")
    next_offset = following.get("offset") if isinstance(following, Mapping) else None
    return [user for user in body["items"] if isinstance(user, dict)], (
        int(next_offset) if next_offset is not None else None)


def parse_hub_time(text: Any) -> datetime | None:
    """A hub timestamp ("2026-01-02T03:04:05.678Z"), aware UTC; None when absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class HubServer(NamedTuple):
    """One server of one user, as the hub lists it."""

    user: str
    #: "" for the default server.
    name: str
    #: The server's path on the hub's public URL ("/user/alice/", "/user/alice/gpu/").
    url: str
    ready: bool
    pending: str | None
    last_activity: datetime | None
    started: datetime | None
    admin: bool

    @property
    def label(self) -> str:
        return f"{self.user}/{self.name}" if self.name else self.user

    def api_path(self) -> str:
        """The hub API path that stops it (DELETE), relative to `/hub/api`."""
        user = quote(self.user, safe="")
        return f"users/{user}/servers/{quote(self.name, safe='')}" if self.name else f"users/{user}/server"


def servers_of(user: Mapping[str, Any]) -> Iterator[HubServer]:
    """Every server in a user model (JupyterHub 0.9+ lists them under "servers", named ones too)."""
    name = str(user.get("name", ""))
    for server_name, info in (user.get("servers") or {}).items():
        if not isinstance(info, Mapping):
            continue
        yield HubServer(
            user=name, name=str(server_name), url=str(info.get("url") or ""),
            ready=bool(info.get("ready")), pending=info.get("pending"),
            last_activity=parse_hub_time(info.get("last_activity")),
            started=parse_hub_time(info.get("started")), admin=bool(user.get("admin")),
        )
