"""A real `jupyter server` process on a loopback port with a token, in an isolated HOME."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

TOKEN = "autoshutdown-test-token"


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

    def __init__(self, home: Path, *args: str, python: str = sys.executable) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(home, [
            python, "-m", "jupyter_server", f"--port={self.port}", "--ip=127.0.0.1",
            "--no-browser", "--allow-root", f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={home}", *args,
        ])


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
