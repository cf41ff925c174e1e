"""A real `jupyter server` process on a loopback port with a token, in an isolated HOME."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

TOKEN = "autoshutdown-test-token"
#: Tests' short timeouts stop the app within seconds of the start: no start-up grace unless a test
#: gives its own (test_startup_grace.py tests the grace itself).
NO_STARTUP_GRACE = "--AutoShutdown.startup_grace_minutes=0"


def with_default_grace(args: tuple[str, ...] | list[str]) -> list[str]:
    """`args`, with no start-up grace unless they set one (traitlets refuses a trait given twice)."""
    if any(arg.startswith("--AutoShutdown.startup_grace_minutes") for arg in args):
        return list(args)
    return [NO_STARTUP_GRACE, *args]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def isolated_env(home: Path) -> dict[str, str]:
    """The environment with HOME and every Jupyter directory inside `home`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("JUPYTER")}
    env.update({
        "HOME": str(home),
        "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
        "JUPYTER_DATA_DIR": str(home / ".local/share/jupyter"),
        "JUPYTER_RUNTIME_DIR": str(home / ".local/share/jupyter/runtime"),
    })
    return env


class _Process:
    """A subprocess on a loopback port, its output in a log file, stopped with SIGINT."""

    health_path = "api/status"
    token = TOKEN

    def __init__(self, home: Path, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.log_path = home / f"{type(self).__name__}-{self.port}.log"
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            argv, env=env or isolated_env(home), stdout=self.log, stderr=subprocess.STDOUT
        )
        self.wait_until_answering()

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {self.token}"}
        return requests.request(method, f"{self.url}/{path}", headers=headers, timeout=10, **kwargs)

    def wait_until_answering(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{type(self).__name__} exited early:\n{self.output()}")
            try:
                if self.request("GET", self.health_path).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{type(self).__name__} did not answer in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.send_signal(signal.SIGINT)  # the second one skips the confirmation
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


class ServerProcess(_Process):
    """`jupyter server` with this extension (enabled by the package's installed config)."""

    def __init__(
        self, home: Path, *args: str, python: str = sys.executable, module: str = "jupyter_server",
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(home, [
            python, "-m", module, f"--port={self.port}", "--ip=127.0.0.1",
            "--no-browser", "--allow-root", f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={home}", *with_default_grace(args),
        ], env={**isolated_env(home), **(env or {})})


class StudioClassicServer(_Process):
    """A server as SageMaker Studio Classic runs it: no token, no password, base URL
    /jupyter/default/ (Studio's proxy authenticates; here nothing does). Studio spaces run
    JupyterLab the same way at /jupyterlab/default/ (`base_url`)."""

    token = ""
    health_path = "api/status"

    def __init__(self, home: Path, *args: str, base_url: str = "/jupyter/default/",
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{base_url.rstrip('/')}"
        super().__init__(home, [
            sys.executable, "-m", "jupyter_server", f"--port={self.port}", "--ip=127.0.0.1",
            "--no-browser", "--allow-root", "--IdentityProvider.token=", "--ServerApp.password=",
            f"--ServerApp.base_url={base_url}", "--ServerApp.disable_check_xsrf=False",
            f"--ServerApp.root_dir={home}", *with_default_grace(args),
        ], env={**isolated_env(home), **(env or {})})

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{self.url}/{path}", timeout=10, **kwargs)


class KernelGatewayProcess(_Process):
    """A real Jupyter Kernel Gateway: remote kernels for a server started with `--gateway-url`."""

    health_path = "api/kernelspecs"
    token = "kernel-gateway-test-token"

    def __init__(self, home: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(home, [
            sys.executable, "-m", "kernel_gateway", "--KernelGatewayApp.ip=127.0.0.1",
            f"--KernelGatewayApp.port={self.port}", f"--KernelGatewayApp.auth_token={self.token}",
            # Without it the gateway answers 403 to the server's kernel listing.
            "--JupyterWebsocketPersonality.list_kernels=True",
        ])

    def server_args(self) -> list[str]:
        return [f"--gateway-url={self.url}", f"--GatewayClient.auth_token={self.token}"]


HUB_TEST_DIR = Path(__file__).parent / "hub"


def configurable_http_proxy() -> str | None:
    """The proxy JupyterHub needs: installed by `.ci/run` (npm ci in tests/hub) or on PATH."""
    local = HUB_TEST_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return str(local)
    return shutil.which("configurable-http-proxy")


class HubProcess(_Process):
    """A real JupyterHub on loopback: dummy authenticator, local process spawner, a test service.

    Single-user servers run `jupyterhub.singleuser` with this extension (enabled by the installed
    package) and `singleuser_args`; `server_token_scopes`, when given, is what their tokens may do.
    """

    health_path = "hub/api/"
    token = "hub-service-test-token"

    def __init__(
        self, home: Path, singleuser_args: list[str], server_token_scopes: list[str] | None = None,
        extra_config: dict[str, dict] | Callable[[str], dict[str, dict]] | None = None,
    ) -> None:
        """`extra_config`: more configuration, by section (or a function of the hub's public URL
        that makes it); its lists (services, load_roles) are added to the test's own."""
        proxy = configurable_http_proxy()
        if proxy is None:
            raise FileNotFoundError("configurable-http-proxy: run `npm ci` in tests/hub")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "JupyterHub": {
                "ip": "127.0.0.1", "port": self.port, "hub_ip": "127.0.0.1", "hub_port": free_port(),
                "authenticator_class": "dummy", "spawner_class": "simple",
                "db_url": f"sqlite:///{home}/jupyterhub.sqlite",
                "cookie_secret_file": str(home / "jupyterhub_cookie_secret"),
                "pid_file": str(home / "jupyterhub.pid"),
                # Answer a spawn request at once (202) instead of holding it up to 10 s: the test
                # waits for readiness itself, and a slow machine must not time the request out.
                "tornado_settings": {"slow_spawn_timeout": 0},
                "services": [{"name": "tester", "api_token": self.token}],
                "load_roles": [{
                    "name": "tester",
                    "scopes": ["admin:users", "admin:servers", "access:servers", "list:users"],
                    "services": ["tester"],
                }],
            },
            "ConfigurableHTTPProxy": {"command": [proxy], "api_url": f"http://127.0.0.1:{free_port()}"},
            "Authenticator": {"allow_all": True},
            "SimpleLocalProcessSpawner": {"home_dir_template": str(home / "users" / "{username}")},
            "Spawner": {
                "cmd": [sys.executable, "-m", "jupyterhub.singleuser"],
                "args": ["--allow-root", *with_default_grace(singleuser_args)],
                "poll_interval": 1,  # notice a server that exited by itself within a second
                "http_timeout": 60,
                **({"server_token_scopes": server_token_scopes} if server_token_scopes else {}),
            },
        }
        if callable(extra_config):
            extra_config = extra_config(self.url)
        for section, values in (extra_config or {}).items():
            merged = config.setdefault(section, {})
            for key, value in values.items():
                merged[key] = [*merged[key], *value] if isinstance(merged.get(key), list) else value
        config_path = home / "jupyterhub_config.json"
        config_path.write_text(json.dumps(config))
        env = isolated_env(home)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        super().__init__(
            home, [sys.executable, "-m", "jupyterhub", "-f", str(config_path)], env=env
        )

    def user(self, name: str) -> dict:
        return self.request("GET", f"hub/api/users/{name}").json()
