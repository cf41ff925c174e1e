"""The health check against a real in-process server whose checker is stopped or healthy."""

from __future__ import annotations

import asyncio

from helpers import start_extension

from jupyter_autoshutdown.cli.commands import EXIT_NOT_RUNNING, EXIT_OK, Server, check_health


def server_of(jp_serverapp, jp_http_port, jp_base_url) -> Server:
    return Server(f"http://127.0.0.1:{jp_http_port}{jp_base_url}", jp_serverapp.identity_provider.token)


async def test_health_is_ok_while_the_checker_runs_and_5_once_it_stops(
    jp_serverapp, jp_http_port, jp_base_url, http_server_client
):
    # http_server_client: pytest-jupyter serves jp_serverapp on jp_http_port only with it.
    extension = await start_extension(jp_serverapp)
    server = server_of(jp_serverapp, jp_http_port, jp_base_url)
    # The client is synchronous (requests): run it off the loop that serves the requests.
    healthy = await asyncio.to_thread(check_health, server)
    assert healthy.code == EXIT_OK, healthy.message
    await extension.monitor.stop()
    stopped = await asyncio.to_thread(check_health, server)
    assert stopped.code == EXIT_NOT_RUNNING
    assert "not running" in stopped.message
