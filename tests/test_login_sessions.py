"""People logged in over SSH count as activity for the app action (observe/sources.py's
LoginSessions), with a real sshd: Debian's openssh-server, started by the test on a loopback port
with its own host key, authorized key and config in tmp_path (never the machine's), and a real
`ssh -tt` client a person types into."""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import api, start_extension, wait_for
from server_process import free_port

from jupyter_autoshutdown.observe.sources import find_login_sessions

#: The idle timeout T, in seconds. Linux records a terminal's input time in 8-second windows, and
#: the source counts the end of the window: a short T still holds while a person types.
T = 6.0
STATUS = ("autoshutdown", "api", "status")
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"

if not (os.path.exists(SSHD) and shutil.which("ssh") and shutil.which("ssh-keygen")):
    reason = "needs Debian's openssh-server and openssh-client (apt-get install; .ci/run does)"
    if os.environ.get("CI"):
        raise RuntimeError(reason)  # in CI the login-session tests must run, never skip
    pytestmark = pytest.mark.skip(reason=reason)


@pytest.fixture
def autoshutdown_config() -> dict:
    return {"idle_timeout": T / 60, "max_check_interval": 0.5, "warning_minutes": 0,
            "app_action": "actions_for_tests:RecordingAction"}


class Sshd:
    """sshd on a loopback port, configured only by files in `directory`."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir()
        self.directory = directory
        self.key = directory / "client_key"
        for key in (directory / "host_key", self.key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        authorized = directory / "authorized_keys"
        authorized.write_text((directory / "client_key.pub").read_text())
        authorized.chmod(0o600)
        self.port = free_port()
        config = directory / "sshd_config"
        config.write_text("\n".join([
            f"HostKey {directory / 'host_key'}",
            f"AuthorizedKeysFile {authorized}",
            f"PidFile {directory / 'sshd.pid'}",
            "ListenAddress 127.0.0.1",
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",  # tmp_path's parents are not root's alone
            "",
        ]))
        if os.geteuid() == 0:
            # sshd's privilege-separation directory (systemd makes it at boot, containers lack it).
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.log = (directory / "sshd.log").open("wb")
        self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config), "-p", str(self.port)],
                                        stdout=self.log, stderr=subprocess.STDOUT)

    def wait_until_listening(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.directory / "sshd.log").read_text()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("sshd did not listen: " + (self.directory / "sshd.log").read_text())

    def login(self) -> subprocess.Popen[bytes]:
        """`ssh -tt` as this user: a terminal on the machine, typed into through its stdin."""
        return subprocess.Popen(
            ["ssh", "-tt", "-i", str(self.key), "-p", str(self.port), "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "LogLevel=ERROR", f"{getpass.getuser()}@127.0.0.1"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


@pytest.fixture
def sshd(tmp_path) -> Iterator[Sshd]:
    server = Sshd(tmp_path / "sshd")
    try:
        server.wait_until_listening()
        yield server
    finally:
        server.stop()


@pytest.fixture
def logins() -> Iterator[list[subprocess.Popen[bytes]]]:
    """ssh clients the test starts, each ended after it (its session with it)."""
    clients: list[subprocess.Popen[bytes]] = []
    try:
        yield clients
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.wait(10)


def type_line(client: subprocess.Popen[bytes], line: str) -> None:
    assert client.stdin is not None and client.poll() is None
    client.stdin.write(line.encode() + b"\n")
    client.stdin.flush()


def ssh_sessions() -> list[str]:
    return [session.tty for session in find_login_sessions() if session.kind == "ssh session"]


async def test_typing_over_ssh_keeps_the_server_until_the_person_logs_out(
    jp_serverapp, jp_fetch, sshd, logins
):
    from actions_for_tests import RecordingAction

    RecordingAction.calls.clear()
    await start_extension(jp_serverapp)
    client = sshd.login()
    logins.append(client)
    ttys = await wait_for(ssh_sessions, timeout=20, what="the ssh session in /proc")
    started = time.monotonic()
    while time.monotonic() - started < 3 * T:
        type_line(client, "true")
        assert not RecordingAction.calls, "the app action ran while a person typed over SSH"
        await asyncio.sleep(1.0)
    assert not RecordingAction.calls, RecordingAction.calls
    status = await api(jp_fetch, *STATUS)
    assert status["app"]["last_activity_source"] == f"ssh session of {getpass.getuser()} on {ttys[0]}"

    type_line(client, "exit")
    client.wait(10)
    logged_out = time.monotonic()
    await wait_for(lambda: RecordingAction.calls, timeout=T + 20, what="the app action after logout")
    assert time.monotonic() - logged_out <= T + 20


async def test_an_open_untouched_session_does_not_hold_the_server(jp_serverapp, sshd, logins, caplog):
    from actions_for_tests import RecordingAction

    RecordingAction.calls.clear()
    await start_extension(jp_serverapp)
    client = sshd.login()
    logins.append(client)
    await wait_for(ssh_sessions, timeout=20, what="the ssh session in /proc")
    logged_in = time.monotonic()
    await wait_for(lambda: RecordingAction.calls, timeout=T + 20, what="the app action")
    assert time.monotonic() - logged_in <= T + 20
    assert client.poll() is None, "the session is still open"
    assert any("login sessions" in record.getMessage() for record in caplog.records)
