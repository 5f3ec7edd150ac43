"""obsctl against a real daemon: output for people, --json for scripts, exit codes."""

import base64
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import msgspec

from obsd.core.config import ISTANBUL
from tests.conftest import DaemonProcess


def fake_jwt(exp: int) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256'})}.{part({'exp': exp, 'sub': 'student'})}.U2VjcmV0U2ln"


def obsctl(
    daemon_socket: Path,
    *args: str,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "obsctl", "--socket", str(daemon_socket), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_status_for_people_and_for_scripts(daemon: DaemonProcess) -> None:
    human = obsctl(daemon.socket, "status")
    assert human.returncode == 0
    assert "phase" in human.stdout and "idle" in human.stdout
    scripted = obsctl(daemon.socket, "status", "--json")
    envelope = json.loads(scripted.stdout)
    assert envelope["success"] is True and envelope["data"]["phase"] == "idle"


def test_configure_then_config_shows_the_plan(daemon: DaemonProcess) -> None:
    target = (datetime.now(ISTANBUL) + timedelta(days=30)).replace(microsecond=0).isoformat()
    result = obsctl(
        daemon.socket,
        "configure",
        "--ecrn",
        "12345",
        "23456",
        "--scrn",
        "34567",
        "--target",
        target,
        "--max-attempts",
        "20",
        "--ntp-server",
        "127.0.0.1:1123",
        "--ntp-server",
        "pool.ntp.org",
    )
    assert result.returncode == 0, result.stderr
    config = json.loads(obsctl(daemon.socket, "--json", "config").stdout)["data"]["config"]
    assert config["ecrn"] == ["12345", "23456"] and config["scrn"] == ["34567"]
    assert config["target"] == target and config["max_attempts"] == 20
    assert config["ntp_servers"] == ["127.0.0.1:1123", "pool.ntp.org"]


def test_exit_status_2_when_the_daemon_refuses(daemon: DaemonProcess) -> None:
    result = obsctl(daemon.socket, "configure", "--ecrn", "123")
    assert result.returncode == 2
    assert "VALIDATION_ERROR" in result.stderr and "$.config.ecrn[0]" in result.stderr


def test_exit_status_1_with_a_clear_message_when_no_daemon_runs(short_dir: Path) -> None:
    result = obsctl(short_dir / "nothing.sock", "status")
    assert result.returncode == 1
    assert "obsd is not running" in result.stderr and "nothing.sock" in result.stderr


def test_a_token_is_never_taken_from_the_command_line(daemon: DaemonProcess) -> None:
    result = obsctl(daemon.socket, "configure", "--token", fake_jwt(4102444800))
    assert result.returncode == 1 and "standard input" in result.stderr
    config = json.loads(obsctl(daemon.socket, "--json", "config").stdout)["data"]
    assert config["token"]["info"] is None


def test_the_token_never_leaks_anywhere(daemon: DaemonProcess, short_dir: Path) -> None:
    token = fake_jwt(4102444800)
    from_stdin = obsctl(daemon.socket, "configure", "--token", "-", stdin=f"Bearer {token}\n")
    token_file = short_dir / "token.txt"
    token_file.write_text(token)
    from_file = obsctl(daemon.socket, "configure", "--token-file", str(token_file))
    outputs = [from_stdin, from_file]
    for args in (
        ["config"],
        ["--json", "config"],
        ["status"],
        ["--json", "status"],
        ["health"],
        ["tail", "--after", "0"],
        ["--json", "tail", "--after", "0"],
        ["--json", "events"],
        ["events"],
    ):
        outputs.append(obsctl(daemon.socket, *args))
    assert all(o.returncode == 0 for o in outputs), [o.stderr for o in outputs]
    config = json.loads(outputs[3].stdout)["data"]
    assert config["token"]["info"]["exp"] == "2100-01-01T00:00:00Z"
    assert config["token"]["info"]["fingerprint"].startswith("sha256:")
    secret_parts = [token, token.split(".")[1], token.split(".")[2]]
    texts = [o.stdout + o.stderr for o in outputs]
    assert daemon.stop() == 0
    texts.append(daemon.stderr())
    for path in (daemon.state_dir / "log").iterdir():
        texts.append(path.read_text(errors="replace"))
    for text in texts:
        for secret in secret_parts:
            assert secret not in text
    stored = daemon.state_dir / "obs-token"
    assert stored.read_text() == token and stored.stat().st_mode & 0o777 == 0o600


def test_tail_follow_shows_new_events_as_they_happen(daemon: DaemonProcess) -> None:
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "obsctl",
            "--socket",
            str(daemon.socket),
            "--json",
            "tail",
            "-f",
            "--after",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        lines = [json.loads(follower.stdout.readline()) for _ in range(3)]
        assert [line.get("seq") for line in lines[:2]] == [1, 2]
        assert lines[2]["type"] == "caught_up"
        assert obsctl(daemon.socket, "configure", "--ecrn", "12345").returncode == 0
        live = json.loads(follower.stdout.readline())
        assert (live["seq"], live["type"]) == (3, "config_changed")
    finally:
        follower.terminate()
        follower.wait(timeout=10)


def test_tail_human_output_is_one_readable_line_per_event(daemon: DaemonProcess) -> None:
    assert obsctl(daemon.socket, "configure", "--ecrn", "12345").returncode == 0
    lines = obsctl(daemon.socket, "tail", "--after", "0").stdout.splitlines()
    assert len(lines) == 3
    assert lines[2].split()[0] == "3" and "config_changed" in lines[2] and "12345" in lines[2]


def test_events_pages_through_history(daemon: DaemonProcess) -> None:
    for crn in ("11111", "22222", "33333"):
        assert obsctl(daemon.socket, "configure", "--ecrn", crn).returncode == 0
    page = json.loads(
        obsctl(daemon.socket, "--json", "events", "--after", "1", "--limit", "2").stdout
    )["data"]
    assert [item["seq"] for item in page["items"]] == [2, 3]
    assert page["has_more"] is True and page["next_after_seq"] == 3
    only = json.loads(obsctl(daemon.socket, "--json", "events", "--type", "config_changed").stdout)[
        "data"
    ]
    assert [item["seq"] for item in only["items"]] == [3, 4, 5]


def test_schema_is_valid_json(daemon: DaemonProcess) -> None:
    schema = json.loads(obsctl(daemon.socket, "schema").stdout)
    assert "request" in schema and "$defs" in schema


def test_importing_obsctl_leaves_the_daemon_and_network_stack_unloaded() -> None:
    probe = (
        "import sys, obsctl.cli; print(' '.join(m for m in sys.modules if m.split('.')[0] "
        "in ('httpx', 'httpcore', 'anyio') or m.startswith(('obsd.daemon', "
        "'obsd.adapters'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()
    assert loaded == []


def test_ping_round_trip(daemon: DaemonProcess) -> None:
    result = obsctl(daemon.socket, "ping")
    assert (result.returncode, result.stdout.strip()) == (0, "pong")


def test_default_socket_comes_from_the_environment(daemon: DaemonProcess) -> None:
    env = {**os.environ, "OBSD_SOCKET": str(daemon.socket)}
    result = subprocess.run(
        [sys.executable, "-m", "obsctl", "--json", "ping"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert msgspec.json.decode(result.stdout)["data"] == {"pong": True}


def test_a_long_ecrn_list_is_taken_with_advice_and_reordered_without_retyping(
    daemon: DaemonProcess,
) -> None:
    listed = obsctl(daemon.socket, "configure", "--ecrn", "21234", "22001", "24010", "24020")
    assert listed.returncode == 0, listed.stderr
    (advice,) = [line for line in listed.stdout.splitlines() if line.startswith("warning")]
    assert "the last (24020) may wait 0.5-3.3 s for its turn" in advice
    moved = obsctl(daemon.socket, "--json", "configure", "--ecrn-first", "24020", "22001")
    assert moved.returncode == 0, moved.stderr
    reply = msgspec.json.decode(moved.stdout)["data"]
    assert reply["config"]["ecrn"] == ["24020", "22001", "21234", "24010"]
    assert "the last (24010)" in reply["warnings"][0]
    missing = obsctl(daemon.socket, "configure", "--ecrn-first", "99999")
    assert missing.returncode == 1
    assert missing.stderr == (
        "obsctl: --ecrn-first: 99999 not in the ECRN list (24020, 22001, 21234, 24010); "
        "add it with --ecrn\n"
    )
