"""The real `obsd` binary on a state directory or socket path it cannot use: exit status 1 and
one line naming the path, what is wrong with it and what to do, never a traceback; and damage
it can live with (a log segment or the token file of the wrong kind) is served read-only or
shown as a problem instead of stopping it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from obsctl.client import Client
from tests.conftest import (
    STARTUP_TIMEOUT_S,
    WITHOUT_FILE_OVERRIDE,
    DaemonProcess,
    require_root,
    script_path,
)

STATE_REMEDY = "give obsd a state directory it can write: --state-dir"
SOCKET_REMEDY = "choose a socket path in a directory obsd can write: --socket"


def failed_start(*argv: str) -> str:
    """Run obsd to its end; it must exit 1 with one log line. Return that line."""
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    lines = result.stderr.splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert " ERROR obsd: " in lines[0], lines
    return lines[0].split(" ERROR obsd: ", 1)[1]


def obsd(short_dir: Path, state_dir: Path, socket: Path | None = None) -> list[str]:
    return [
        script_path("obsd"),
        "--socket",
        str(socket or short_dir / "obsd.sock"),
        "--state-dir",
        str(state_dir),
    ]


def test_a_state_directory_that_is_a_file(short_dir: Path) -> None:
    (short_dir / "state").write_text("")
    line = failed_start(*obsd(short_dir, short_dir / "state"))
    assert line.startswith(f"{short_dir / 'state'} exists and is not a directory; ")
    assert STATE_REMEDY in line


def test_a_log_directory_that_is_a_file(short_dir: Path) -> None:
    (short_dir / "state").mkdir()
    (short_dir / "state" / "log").write_text("")
    line = failed_start(*obsd(short_dir, short_dir / "state"))
    assert line.startswith(f"{short_dir / 'state' / 'log'} exists and is not a directory; ")


def test_a_state_directory_on_a_read_only_file_system(short_dir: Path) -> None:
    require_root("mounting a read-only file system")
    (short_dir / "ro").mkdir()
    command = " ".join(obsd(short_dir, short_dir / "ro" / "state"))
    line = failed_start(
        "unshare",
        "--mount",
        "sh",
        "-euc",
        f"mount -t tmpfs -o ro tmpfs {short_dir / 'ro'}; exec {command}",
    )
    assert line.startswith(f"{short_dir / 'ro' / 'state'} is on a read-only file system; ")
    assert STATE_REMEDY in line


def someone_elses(directory: Path) -> Path:
    """`directory`, created 0700 and owned by nobody."""
    require_root("a directory owned by another user")
    directory.mkdir(mode=0o700)
    os.chown(directory, 65534, 65534)
    return directory


def test_a_state_directory_it_may_not_enter(short_dir: Path) -> None:
    private = someone_elses(short_dir / "private")
    line = failed_start(*WITHOUT_FILE_OVERRIDE, *obsd(short_dir, private / "state"))
    assert line.startswith(f"{private / 'state'} is not accessible: permission denied for uid ")
    assert STATE_REMEDY in line


def test_a_socket_directory_it_may_not_create(short_dir: Path) -> None:
    private = someone_elses(short_dir / "private")
    line = failed_start(
        *WITHOUT_FILE_OVERRIDE, *obsd(short_dir, short_dir / "state", private / "run" / "obsd.sock")
    )
    assert line.startswith(f"{private / 'run'} is not accessible: permission denied")
    assert SOCKET_REMEDY in line


def test_a_socket_path_that_is_a_regular_file(short_dir: Path) -> None:
    (short_dir / "obsd.sock").write_text("keep me")
    line = failed_start(*obsd(short_dir, short_dir / "state"))
    assert line == (
        f"{short_dir / 'obsd.sock'} exists and is not a socket; refusing to "
        "replace it: move it away or choose another --socket"
    )
    assert (short_dir / "obsd.sock").read_text() == "keep me"


def test_a_socket_path_longer_than_unix_sockets_allow(short_dir: Path) -> None:
    socket = short_dir / ("s" * 110)
    line = failed_start(*obsd(short_dir, short_dir / "state", socket))
    assert "a Unix socket path holds at most 107: choose a shorter --socket" in line


def test_a_socket_in_a_missing_directory_gets_its_directory(short_dir: Path) -> None:
    daemon = DaemonProcess(short_dir / "new" / "run" / "obsd.sock", short_dir / "state").start()
    assert daemon.stop() == 0


def test_a_log_segment_replaced_by_a_directory_is_damage_served_read_only(short_dir: Path) -> None:
    first = DaemonProcess(short_dir / "obsd.sock", short_dir / "state").start()
    assert first.stop() == 0
    (segment,) = (short_dir / "state" / "log").glob("*.jsonl")
    segment.unlink()
    segment.mkdir()
    daemon = DaemonProcess(short_dir / "obsd.sock", short_dir / "state").start()
    with Client(daemon.socket) as client:
        damage = client.request("status")["data"]["log"]["damage"]
        problems = client.request("health")["data"]["problems"]
    assert damage["segment"] == segment.name
    assert damage["reason"] == "a directory where a segment file belongs"
    assert problems == [
        f"log damaged at {segment.name} line 1: a directory where a segment file belongs"
    ]
    assert daemon.stop() == 0
    assert daemon.stderr().count("\n") == 3  # damaged, listening, stopped: one line each


def test_a_token_file_of_the_wrong_kind_is_a_problem_not_a_crash(short_dir: Path) -> None:
    (short_dir / "state" / "obs-token").mkdir(parents=True)
    daemon = DaemonProcess(short_dir / "obsd.sock", short_dir / "state").start()
    with Client(daemon.socket) as client:
        problems = client.request("health")["data"]["problems"]
        refused = client.request("test_token")
    assert problems == [
        f"{short_dir / 'state' / 'obs-token'} is a directory where a file "
        "belongs; remove it, then configure the token again (obsctl configure "
        "--token -)"
    ]
    assert refused["error"]["code"] == "TOKEN_MISSING"
    assert daemon.stop() == 0
    shutil.rmtree(short_dir / "state")
