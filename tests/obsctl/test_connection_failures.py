"""The real `obsctl` binary when it cannot talk to obsd: exit status 1 and one line saying what
is wrong and what to do, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from tests.conftest import WITHOUT_FILE_OVERRIDE, DaemonProcess, require_root, script_path

START_IT = "start it (sudo systemctl start obsd, or obsd run)"
POINT_AT_IT = "point --socket (or $OBSD_SOCKET) at obsd's socket"
ASK_FOR_THE_GROUP = (
    "ask to be added to the obsd group (sudo usermod -aG obsd $USER, then log in again)"
)


def failure(*argv: str, env: dict[str, str] | None = None) -> str:
    """Run obsctl; it must exit 1 with one line on stderr. Return that line."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env, check=False)
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr.removeprefix("obsctl: ").rstrip("\n")


def status_at(path: Path) -> list[str]:
    return [script_path("obsctl"), "--socket", str(path), "status"]


def test_no_daemon_and_no_socket(short_dir: Path) -> None:
    path = short_dir / "obsd.sock"
    assert failure(*status_at(path)) == f"obsd is not running: no socket at {path}; {START_IT}"


def test_a_socket_nobody_listens_on(short_dir: Path) -> None:
    path = short_dir / "obsd.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # What a crashed daemon leaves behind.
    assert failure(*status_at(path)) == (
        f"obsd is not running: nothing listens on {path}; {START_IT}"
    )


def test_a_socket_path_that_is_a_regular_file(short_dir: Path) -> None:
    path = short_dir / "obsd.sock"
    path.write_text("")
    assert failure(*status_at(path)) == f"{path} is not a socket; {POINT_AT_IT}"


def test_a_socket_path_in_a_missing_directory(short_dir: Path) -> None:
    path = short_dir / "missing" / "obsd.sock"
    assert failure(*status_at(path)) == (
        f"obsd is not running: there is no directory {path.parent}; {POINT_AT_IT}"
    )


def test_a_socket_path_through_a_file(short_dir: Path) -> None:
    (short_dir / "file").write_text("")
    path = short_dir / "file" / "obsd.sock"
    assert failure(*status_at(path)) == (
        f"{path}: a part of the path is not a directory; {POINT_AT_IT}"
    )


def test_no_permission_on_the_socket(short_dir: Path) -> None:
    require_root("a socket owned by another user")
    directory = short_dir / "run"
    directory.mkdir(mode=0o750)
    os.chown(directory, 65534, 65534)
    daemon = DaemonProcess(directory / "obsd.sock", short_dir / "state").start()
    try:
        line = failure(*WITHOUT_FILE_OVERRIDE, *status_at(daemon.socket))
    finally:
        assert daemon.stop() == 0
    assert line == f"no permission to connect to {daemon.socket}: {ASK_FOR_THE_GROUP}"


def test_the_system_socket_directory_is_closed_to_a_user_outside_the_group() -> None:
    # obsd.service runs (RuntimeDirectory /run/obsd, 0750 obsd:obsd), obsd.socket does not,
    # and the user is not in the group: obsctl looks there by default.
    require_root("a private /run")
    script = (
        "mount -t tmpfs tmpfs /run; mkdir -m 0750 /run/obsd; chown 65534:65534 /run/obsd;"
        f" exec {' '.join(WITHOUT_FILE_OVERRIDE)} {script_path('obsctl')} status"
    )
    env = {k: v for k, v in os.environ.items() if k != "OBSD_SOCKET"}
    assert failure("unshare", "--mount", "sh", "-euc", script, env=env) == (
        f"no permission to connect to /run/obsd/obsd.sock: {ASK_FOR_THE_GROUP}"
    )
