from __future__ import annotations

import pytest
from traitlets.config import Config

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def autoshutdown_config() -> dict:
    """Per-module or per-test AutoShutdown traits; override this fixture to change them."""
    return {}


@pytest.fixture
def state_path(tmp_path):
    return tmp_path / "autoshutdown-state" / "state.json"


@pytest.fixture
def server_extensions() -> dict:
    """The extensions the test server loads; override to run without terminals."""
    return {"jupyter_server_terminals": True, "jupyter_autoshutdown": True}


@pytest.fixture
def jp_server_config(autoshutdown_config, state_path, server_extensions) -> Config:
    return Config(
        {
            "ServerApp": {"jpserver_extensions": server_extensions},
            # No start-up grace: tests' short timeouts stop the app within seconds of the start
            # (test_startup_grace.py tests the grace itself).
            "AutoShutdown": {"state_file": str(state_path), "startup_grace_minutes": 0,
                             **autoshutdown_config},
        }
    )


@pytest.fixture
def home(tmp_path):
    """An empty HOME for subprocess tests (see server_process.isolated_env)."""
    path = tmp_path / "home"
    path.mkdir()
    return path
