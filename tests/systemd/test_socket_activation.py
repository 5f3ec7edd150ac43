"""Socket activation: the daemon serves on a listening socket handed over the way systemd does."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from obsctl.client import Client, ClientError
from tests.systemd.conftest import WAIT_S, NotifySocket, require_tool

# Puts the socket passed as argv[1] at fd 3 and execs obsd with argv[2:]. LISTEN_PID must name
# the process that reads it, and exec keeps the pid: so it is set here, just before the exec.
ACTIVATE = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.executable, [sys.executable, "-m", "obsd", *sys.argv[2:]])
"""


def _listening(path: Path) -> socket.socket:
    """A socket as obsd.socket makes it: bound, listening, mode 0660."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o660)
    sock.listen(16)
    return sock


def _greeting(path: Path) -> dict[str, object]:
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            with Client(path, timeout=WAIT_S) as client:
                return client.greeting
        except ClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_the_daemon_serves_on_a_socket_passed_as_fd_3(
    short_dir: Path, notify_socket: NotifySocket, processes: list[subprocess.Popen[bytes]]
) -> None:
    path = short_dir / "activated.sock"
    listening = _listening(path)
    # A --socket path as well: with a socket passed, the daemon must leave it unbound.
    own = short_dir / "own.sock"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            ACTIVATE,
            str(listening.fileno()),
            "--socket",
            str(own),
            "--state-dir",
            str(short_dir / "state"),
        ],
        pass_fds=(listening.fileno(),),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ | {"NOTIFY_SOCKET": str(notify_socket.path)},
    )
    processes.append(process)
    listening.close()  # The daemon holds it now, as systemd's copy would stay with systemd.
    notify_socket.wait_for(lambda n: n.fields.get("READY") == "1")
    with Client(path, timeout=5) as client:  # At once: READY means it accepts.
        assert client.greeting["access"] == "rw"
        status = client.request("status")
        assert status["success"]
        assert status["data"]["daemon"]["pid"] == process.pid
    assert not own.exists()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=WAIT_S) == 0
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert f"listening on {path} (from systemd)" in stderr
    # The file is systemd's (obsd.socket): it stays for the next activation.
    assert path.exists()


def test_a_passed_descriptor_that_is_no_listening_socket_stops_the_start(short_dir: Path) -> None:
    with open(short_dir / "not-a-socket", "w") as file:
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                ACTIVATE,
                str(file.fileno()),
                "--socket",
                str(short_dir / "own.sock"),
                "--state-dir",
                str(short_dir / "state"),
            ],
            pass_fds=(file.fileno(),),
            capture_output=True,
            text=True,
            timeout=WAIT_S,
        )
    assert result.returncode == 1
    assert "is not a socket" in result.stderr


def test_a_socket_for_another_pid_is_not_taken(
    short_dir: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    # LISTEN_PID names the parent (as when a wrapper forgot to set it): the daemon must ignore
    # the variables and bind its own socket.
    own = short_dir / "own.sock"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "obsd",
            "--socket",
            str(own),
            "--state-dir",
            str(short_dir / "state"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ | {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid())},
    )
    processes.append(process)
    assert _greeting(own)["access"] == "rw"


def test_the_daemon_runs_under_systemd_socket_activate(
    short_dir: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    activate = require_tool("systemd-socket-activate")
    path = short_dir / "obsd.sock"
    # It passes only a few variables on (-E adds ours) and execs the daemon on the first
    # connection, with LISTEN_PID set to the daemon's pid.
    process = subprocess.Popen(
        [
            activate,
            "--listen",
            str(path),
            "-E",
            f"OBSD_STATE_DIR={short_dir / 'state'}",
            sys.executable,
            "-m",
            "obsd",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    processes.append(process)
    deadline = time.monotonic() + WAIT_S
    while not path.exists():
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "systemd-socket-activate did not listen"
        time.sleep(0.02)
    greeting = _greeting(path)
    assert greeting["access"] == "rw"
    with Client(path, timeout=5) as client:
        status = client.request("status")
    assert status["data"]["daemon"]["pid"] == process.pid  # It exec'd in place.
    assert status["data"]["log"]["directory"] == str(short_dir / "state" / "log")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=WAIT_S) == 0
    assert path.exists()
