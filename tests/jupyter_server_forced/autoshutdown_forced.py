"""A pytest plugin: every pytest-jupyter test server loads and starts jupyter_autoshutdown.

For running another project's test suite (jupyter_server's own) with our extension on, to show
that it changes nothing there::

    PYTHONPATH=path/to/tests/jupyter_server_forced python -m pytest -p autoshutdown_forced ...

Not a conftest and not a test module: our own test run never loads it.
"""

from __future__ import annotations

from typing import Any

import pytest

EXTENSION = "jupyter_autoshutdown"
#: How many extension apps of ours test servers initialised and started (shown at the end).
_counts = {"loaded": 0, "started": 0}
#: Our extension apps started during the current test.
_started: list[Any] = []


def pytest_configure(config: pytest.Config) -> None:
    from jupyter_server.serverapp import ServerApp
    from tornado.ioloop import IOLoop

    from jupyter_autoshutdown.app import AutoShutdown

    initialize_settings = AutoShutdown.initialize_settings

    def counted(self: Any) -> None:
        _counts["loaded"] += 1
        initialize_settings(self)

    AutoShutdown.initialize_settings = counted  # type: ignore[method-assign]

    start_hook = AutoShutdown._start_jupyter_server_extension

    async def recorded(self: Any, serverapp: Any) -> None:
        _counts["started"] += 1
        _started.append(self)
        await start_hook(self, serverapp)

    AutoShutdown._start_jupyter_server_extension = recorded  # type: ignore[method-assign]

    # A real server starts its extensions once its loop runs (ServerApp.start_ioloop ->
    # _post_start); pytest-jupyter's servers never call start_ioloop, so ours would never start.
    # Start ours (only ours) as a real server would: when the loop next runs, the extension app
    # the server holds then, once. jupyter_server before 2.16 has no start hook: there our
    # extension starts itself on the loop.
    start_app = ServerApp.start_app

    async def start_ours(serverapp: Any) -> None:
        manager = serverapp.extension_manager
        if not hasattr(manager, "start_all_extensions"):
            return
        apps = manager.extension_apps.get(EXTENSION, set())
        if any(app not in _started for app in apps):
            await manager.start_extension(EXTENSION)

    def start_app_then_ours(self: Any) -> None:
        start_app(self)
        IOLoop.current().add_callback(start_ours, self)

    ServerApp.start_app = start_app_then_ours  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _autoshutdown_forced(request: pytest.FixtureRequest) -> None:
    """Our extension added to the test's server configuration, whoever defined it.

    Autouse fixtures are set up first, so the test's `jp_server_config` (its module's own, if it
    has one) already holds our extension when pytest-jupyter's server fixtures read it.
    """
    if "jp_server_config" not in request.fixturenames:
        return
    loop = request.getfixturevalue("jp_asyncio_loop")  # closed after this fixture's teardown
    config = request.getfixturevalue("jp_server_config")
    extensions = config.setdefault("ServerApp", {}).setdefault("jpserver_extensions", {})
    extensions[EXTENSION] = True

    def stop_the_rest() -> None:
        # pytest-jupyter stops the extensions of the server it holds at the end. Some tests
        # initialise one ServerApp twice, which a real server never does: the extension app made
        # the first time is then never stopped. Stop it as the server's shutdown would have.
        started, _started[:] = list(_started), []
        for app in started:
            monitor = getattr(app, "monitor", None)
            if monitor is not None and monitor.running:
                loop.run_until_complete(app.stop_extension())

    request.addfinalizer(stop_the_rest)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(
        f"{EXTENSION} forced on: loaded into {_counts['loaded']} test servers, "
        f"started in {_counts['started']}"
    )
