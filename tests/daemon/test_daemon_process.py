"""The real obsd process: lifecycle, durability across restarts, sockets, bad input."""

import grp
import os
import pwd
import resource
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from obsctl.client import Client
from tests.conftest import STARTUP_TIMEOUT_S, DaemonProcess, wait_until


def raw_connection(path: Path) -> tuple[socket.socket, dict[str, object]]:
    """A bare socket to the daemon and its greeting."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(path))
    return sock, msgspec.json.decode(read_line(sock))


def read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def exchange(sock: socket.socket, line: bytes) -> dict[str, object]:
    sock.sendall(line)
    return msgspec.json.decode(read_line(sock))  # type: ignore[no-any-return]


def test_greeting_tells_protocol_server_lineage_head_and_access(daemon: DaemonProcess) -> None:
    sock, greeting = raw_connection(daemon.socket)
    assert greeting["id"] is None and greeting["success"] is True
    data = greeting["data"]
    assert isinstance(data, dict)
    assert data["protocol"] == 1 and data["access"] == "rw"
    assert data["head_seq"] == 2 and isinstance(data["log_id"], str)
    sock.close()


def test_socket_file_is_private_by_default(daemon: DaemonProcess) -> None:
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o600


def test_configuration_survives_a_restart_and_seq_continues(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        log_id = client.greeting["log_id"]
        response = client.request(
            "configure", config={"ecrn": ["12345", "23456"], "max_attempts": 9}
        )
        assert response["success"], response
    assert daemon.stop() == 0
    assert not daemon.socket.exists(), "a clean stop removes the socket file"
    daemon.start()
    with daemon.client() as client:
        config = client.request("config")["data"]["config"]
        assert (config["ecrn"], config["max_attempts"]) == (["12345", "23456"], 9)
        assert client.greeting["log_id"] == log_id
        events = client.request("events", limit=1000)["data"]["items"]
    types = [event["type"] for event in events]
    assert types == [
        "log_created",
        "daemon_started",
        "config_changed",
        "daemon_stopped",
        "daemon_started",
    ]
    assert [event["seq"] for event in events] == [1, 2, 3, 4, 5]
    assert events[3]["payload"]["reason"] == "received SIGTERM"


def test_sigint_also_stops_cleanly(daemon: DaemonProcess) -> None:
    assert daemon.stop(signal.SIGINT) == 0
    assert not daemon.socket.exists()


def test_an_acknowledged_command_survives_sigkill(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        assert client.request("configure", config={"scrn": ["54321"]})["success"]
    daemon.stop(signal.SIGKILL)
    assert daemon.socket.exists(), "SIGKILL leaves a stale socket behind"
    daemon.start()  # ...which the new daemon replaces.
    with daemon.client() as client:
        assert client.request("config")["data"]["config"]["scrn"] == ["54321"]


def test_a_second_daemon_never_steals_a_live_socket(daemon: DaemonProcess, short_dir: Path) -> None:
    rival = subprocess.run(
        [
            sys.executable,
            "-m",
            "obsd",
            "--socket",
            str(daemon.socket),
            "--state-dir",
            str(short_dir / "other-state"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert rival.returncode == 1
    assert "another obsd is listening" in rival.stderr
    with daemon.client() as client:
        assert client.request("ping")["data"] == {"pong": True}


def test_a_second_daemon_refuses_a_state_dir_in_use(daemon: DaemonProcess, short_dir: Path) -> None:
    rival = subprocess.run(
        [
            sys.executable,
            "-m",
            "obsd",
            "--socket",
            str(short_dir / "other.sock"),
            "--state-dir",
            str(daemon.state_dir),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert rival.returncode == 1 and "is using" in rival.stderr
    assert not (short_dir / "other.sock").exists()


def test_environment_variables_choose_the_paths(short_dir: Path) -> None:
    env = {
        **os.environ,
        "OBSD_SOCKET": str(short_dir / "env.sock"),
        "OBSD_STATE_DIR": str(short_dir / "env-state"),
    }
    process = subprocess.Popen([sys.executable, "-m", "obsd"], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not (short_dir / "env.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        with Client(short_dir / "env.sock") as client:
            status = client.request("status")["data"]
        assert status["log"]["directory"] == str(short_dir / "env-state" / "log")
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0


BAD_LINES = [
    (b"{not json\n", "BAD_JSON"),
    (b"[1, 2, 3]\n", "VALIDATION_ERROR"),
    (b'{"id": 1, "op": "fly"}\n', "UNKNOWN_OP"),
    (b'{"id": 2, "op": "events", "limit": "many"}\n', "VALIDATION_ERROR"),
    (b'{"id": 3, "op": "ping", "please": true}\n', "VALIDATION_ERROR"),
    (b"\xff\xfe\xfd binary \x00\x01\n", "BAD_JSON"),
    (b'{"id": 4, "op": "ping"' + b" " * 70_000 + b"}\n", "LINE_TOO_LONG"),
    (b'{"id": 5, "op": "tail", "after_seq": 99999}\n', "VALIDATION_ERROR"),
    (b'{"id": 6, "op": "tail", "log_id": "not-this-log"}\n', "LOG_ID_MISMATCH"),
]


def test_every_kind_of_bad_input_gets_a_typed_error_on_a_live_connection(
    daemon: DaemonProcess,
) -> None:
    sock, _ = raw_connection(daemon.socket)
    for line, code in BAD_LINES:
        response = exchange(sock, line)
        assert response["success"] is False, line[:40]
        assert response["error"]["code"] == code, (line[:40], response)  # type: ignore[index]
    assert exchange(sock, b'{"id": "still", "op": "ping"}\n') == {
        "id": "still",
        "success": True,
        "data": {"pong": True},
        "error": None,
    }
    sock.close()


def test_abrupt_disconnects_do_not_disturb_the_daemon(daemon: DaemonProcess) -> None:
    witness, _ = raw_connection(daemon.socket)
    for payload in (
        b'{"id": 1, "op": "sta',
        b"\xff" * 1000,
        b'{"id": 1, "op": "tail", "after_seq": 0, "follow": true}\n',
        b"x" * 200_000,
    ):
        sock, _ = raw_connection(daemon.socket)
        sock.sendall(payload)
        sock.close()
    assert exchange(witness, b'{"id": 9, "op": "status"}\n')["success"] is True
    witness.close()


def test_a_stalled_tail_client_does_not_hold_up_commands(daemon: DaemonProcess) -> None:
    stalled, _ = raw_connection(daemon.socket)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(b'{"id": 1, "op": "tail", "after_seq": 0, "follow": true}\n')
    # It never reads again. Meanwhile another client changes things many times over.
    with daemon.client() as client:
        for n in range(300):
            crn = f"{10000 + n}"
            assert client.request("configure", config={"ecrn": [crn]})["success"]
        assert client.request("ping")["success"]
        head = client.request("status")["data"]["log"]["head_seq"]
    assert head == 2 + 300
    # A fresh tail still reads the whole history, gap-free.
    with daemon.client() as reader:
        assert reader.request("tail", after_seq=0)["success"]
        seqs = []
        for line in reader.stream(deadline=time.monotonic() + STARTUP_TIMEOUT_S):
            message = msgspec.json.decode(line)
            if message.get("type") == "caught_up":
                break
            seqs.append(message["seq"])
    assert seqs == list(range(1, head + 1))
    stalled.close()


def test_a_torn_tail_is_repaired_on_start(daemon: DaemonProcess) -> None:
    with daemon.client() as client:
        assert client.request("configure", config={"ecrn": ["11111"]})["success"]
    daemon.stop(signal.SIGKILL)
    segment = next((daemon.state_dir / "log").glob("*.jsonl"))
    with segment.open("ab") as file:
        file.write(b'{"type":"config_changed","seq":4,"timesta')
    daemon.start()
    with daemon.client() as client:
        status = client.request("status")["data"]
        health = client.request("health")["data"]
        config = client.request("config")["data"]["config"]
    assert status["log"]["repairs"] == 1 and status["log"]["damage"] is None
    assert health["ok"] is True and config["ecrn"] == ["11111"]
    assert list((daemon.state_dir / "log").glob("*.broken"))


def test_damage_in_the_middle_is_reported_and_makes_the_daemon_read_only(
    daemon: DaemonProcess,
) -> None:
    with daemon.client() as client:
        for crn in ("11111", "22222"):
            assert client.request("configure", config={"ecrn": [crn]})["success"]
    assert daemon.stop() == 0
    segment = next((daemon.state_dir / "log").glob("*.jsonl"))
    lines = segment.read_bytes().splitlines(keepends=True)
    lines[2] = b"#" * (len(lines[2]) - 1) + b"\n"
    segment.write_bytes(b"".join(lines))
    before = segment.read_bytes()
    daemon.start()
    with daemon.client() as client:
        status = client.request("status")["data"]
        health = client.request("health")["data"]
        refused = client.request("configure", config={"ecrn": ["33333"]})
    assert status["log"]["damage"]["line"] == 3
    assert health["ok"] is False and "damaged" in health["problems"][0]
    assert refused["error"]["code"] == "LOG_DAMAGED"
    assert daemon.stop() == 0
    assert segment.read_bytes() == before, "nothing is appended after damage"


def run_as(uid: int, gid: int, work: Callable[[], object]) -> object:
    """Run `work` in a forked child that has dropped to uid/gid; return what it returned."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # The child: drop privileges for real, then talk to the daemon.
        status = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            os.write(write_end, msgspec.json.encode(work()))
        except BaseException as exc:
            os.write(write_end, msgspec.json.encode({"child_error": repr(exc)}))
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        result = msgspec.json.decode(pipe.read())
    os.waitpid(pid, 0)
    return result


@pytest.mark.skipif(os.geteuid() != 0, reason="connecting as another user needs root")
def test_other_users_get_read_only_access(short_dir: Path) -> None:
    daemon = DaemonProcess(
        short_dir / "obsd.sock", short_dir / "state", ["--socket-group", "nogroup"]
    ).start()
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid

    def as_nobody() -> object:
        with Client(daemon.socket) as client:
            return [
                client.greeting["access"],
                client.request("status")["success"],
                client.request("configure", config={"ecrn": ["12345"]}),
            ]

    try:
        assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o660
        access, status_ok, configure = run_as(nobody, nogroup, as_nobody)  # type: ignore[misc]
        assert (access, status_ok) == ("ro", True)
        assert configure["error"]["code"] == "PERMISSION_DENIED"
        with daemon.client() as client:
            assert client.request("config")["data"]["config"]["ecrn"] == []
    finally:
        assert daemon.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="connecting as another user needs root")
def test_users_outside_the_socket_group_cannot_connect(daemon: DaemonProcess) -> None:
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid

    def as_nobody() -> object:
        try:
            Client(daemon.socket).close()
        except Exception as exc:
            return str(exc)
        return "connected"

    assert "no permission" in str(run_as(nobody, nogroup, as_nobody))


def test_running_out_of_descriptors_is_said_once_then_it_serves_again(short_dir: Path) -> None:
    daemon = DaemonProcess(short_dir / "obsd.sock", short_dir / "state").start()
    soft, hard = resource.prlimit(daemon.pid, resource.RLIMIT_NOFILE)
    in_use = len(os.listdir(f"/proc/{daemon.pid}/fd"))
    resource.prlimit(daemon.pid, resource.RLIMIT_NOFILE, (in_use + 3, hard))
    # More connections than it can take: the rest wait in the backlog, accept() gets EMFILE.
    waiting = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(8)]
    for sock in waiting:
        sock.connect(str(daemon.socket))
    wait_until(
        lambda: "accepting a connection failed: Too many open files" in daemon.stderr(),
        STARTUP_TIMEOUT_S,
        "the first failed accept is logged",
    )
    # The storm lasts a second: about ten retries, which must not be ten lines.
    time.sleep(1.0)
    resource.prlimit(daemon.pid, resource.RLIMIT_NOFILE, (soft, hard))
    for sock in waiting:
        sock.close()
    with Client(daemon.socket) as client:
        assert client.request("ping")["success"]
    wait_until(
        lambda: "works again" in daemon.stderr(), STARTUP_TIMEOUT_S, "the recovery is logged"
    )
    assert daemon.stop() == 0
    lines = [line for line in daemon.stderr().splitlines() if "accepting a connection" in line]
    failures = int(lines[-1].split(" works again after ")[1].split()[0])
    assert failures >= 1 and "Traceback" not in daemon.stderr()
    # Said at the first failure, at 10, 100, ... failures, and once at the end.
    assert len(lines) == len(str(failures)) + 1, lines
