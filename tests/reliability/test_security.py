"""Security: access levels, file modes, token secrecy, hostile input, symlink tricks.

Connecting as another user needs root (the tests fork, then setgid/setuid to nobody), and so
do groupadd and the modes checks on files root would otherwise always be allowed to touch.
"""

from __future__ import annotations

import base64
import grp
import os
import pwd
import select
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import msgspec
import pytest

from obsctl.client import Client, ClientError
from obsd.core.admission import MAX_CONNECTIONS_PER_UID
from obsd.core.framing import MAX_LINE_BYTES
from obsd.core.logformat import segment_name
from obsd.core.protocol import REQUEST_CLASSES, Request, decode_request
from obsd.core.token import fingerprint
from tests.conftest import DaemonProcess, wait_until
from tests.harness import PASSWORD, STUDENT, STUDENT_WHO_LOGS_IN, iso, registration
from tests.reliability.rawwire import (
    MIB,
    RSS_GROWTH_LIMIT_KIB,
    Wire,
    holding_as,
    run_as,
    vm_kib,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="acting as other users needs root")

NOBODY: Final = pwd.getpwnam("nobody").pw_uid
NOGROUP: Final = grp.getgrnam("nogroup").gr_gid
# A value for every required request field, so that each op is well-formed and refused for
# its access level alone (a malformed one would get VALIDATION_ERROR first).
EXAMPLE_FIELDS: Final[dict[str, Any]] = {
    "config": {"max_attempts": 7},
    "run_id": "00000000-0000-4000-8000-000000000000",
    "username": "ayse",
    "password": "not-her-password",
    "crn": "21234",
    "branch": "BLG",
}
MUTATING: Final = [c for c in REQUEST_CLASSES if c.mutating]
READING: Final = [c for c in REQUEST_CLASSES if not c.mutating]
# Ops whose failure on a daemon without runs is about the run, not about access.
READ_FAILURES: Final = {"run": "RUN_NOT_FOUND"}
# Hostile input from a read-only user: endless lines, many over-long ones, deep nesting.
ENDLESS_LINE_BYTES: Final = 16 * MIB
LONG_LINES: Final = 50
LONG_LINE_BYTES: Final = MIB
DEEP_LINES: Final = 200
DEEP_NESTING: Final = 30_000  # 60,000 bytes: within the line limit
HOSTILE_CONNECTIONS: Final = 4
SEND_CHUNK: Final = 64 * 1024
# Small segments so that a few configures rotate the log.
SMALL_SEGMENT_BYTES: Final = 4096
# Names planted ahead of the rotation: more than the configures needed to fill a segment.
PLANTED_SEGMENTS: Final = 60
MAX_CONFIGURES: Final = 50
# The run in the secrecy test: enough lead for test-token and calibrate before the instant.
OPENING_IN_S: Final = 5.0
RUN_TIMEOUT_S: Final = 60.0
OBSCTL_TIMEOUT_S: Final = 60.0
VICTIM_TEXT: Final = "precious: must never be touched by obsd\n"
# Connections a read-only user opens and never reads from, on a log larger than one read chunk.
STALLED_TAILS: Final = 300
PREFILL_EVENTS: Final = 1_000
STALLED_RCVBUF: Final = 4096
# What those stalled tails may cost the daemon in all (issue: "less than ~10 MiB").
STALLED_TAILS_LIMIT_KIB: Final = 10 * 1024
# Time for the prefill, the 300 tails and calibration before the opening.
STALLED_RUN_OPENING_S: Final = 20.0
# The daemon starts every replay at once; this only bounds a wait that never ends.
STALL_TIMEOUT_S: Final = 30.0


def request_line(cls: type[Request], request_id: int) -> bytes:
    """A well-formed request of `cls` (checked with the daemon's own decoder)."""
    op = str(cls.__struct_config__.tag)
    required = [f.name for f in msgspec.structs.fields(cls) if f.required and f.name != "id"]
    missing = [name for name in required if name not in EXAMPLE_FIELDS]
    assert not missing, f"op {op!r} needs example values for {missing} in EXAMPLE_FIELDS"
    line = msgspec.json.encode(
        {"id": request_id, "op": op, **{name: EXAMPLE_FIELDS[name] for name in required}}
    )
    assert type(decode_request(line)) is cls
    return line + b"\n"


def ops_as(path: Path, classes: list[type[Request]]) -> dict[str, Any]:
    """Greeting access, and the outcome of one request of each class, on one connection."""
    with Wire(path) as wire:
        outcomes: dict[str, str] = {}
        for number, cls in enumerate(classes, 1):
            wire.send(request_line(cls, number))
            response = wire.read_response()
            assert response["id"] == number, response
            outcomes[str(cls.__struct_config__.tag)] = (
                "success" if response["success"] else response["error"]["code"]
            )
        return {
            "access": wire.greeting["data"]["access"],
            "status_access": wire.request("status", "s")["data"]["access"],
            "outcomes": outcomes,
        }


def head_and_config(path: Path) -> tuple[int, Any]:
    """The log head and the configuration, read as root."""
    with Wire(path) as wire:
        return (wire.request("status")["data"]["log"]["head_seq"], wire.request("config")["data"])


@pytest.fixture
def admin_group() -> Iterator[tuple[str, int]]:
    """A group created for the test (and deleted after it)."""
    name = f"obsdt{os.getpid() % 100_000}"
    subprocess.run(["groupadd", name], check=True, capture_output=True)
    try:
        yield name, grp.getgrnam(name).gr_gid
    finally:
        subprocess.run(["groupdel", name], check=False, capture_output=True)


@contextmanager
def running(daemon: DaemonProcess) -> Iterator[DaemonProcess]:
    """A started daemon that must exit 0 on SIGTERM at the end."""
    daemon.start()
    try:
        yield daemon
    finally:
        status = daemon.stop()
    assert status == 0, daemon.stderr()[-3000:]


def snapshot(path: Path) -> tuple[bytes, int, int]:
    """Content, mode and mtime of a file (to show it was not touched)."""
    info = path.stat()
    return path.read_bytes(), stat.S_IMODE(info.st_mode), info.st_mtime_ns


def victim_file(directory: Path, name: str = "victim.txt") -> Path:
    """A file the daemon must never write to, owned by the test."""
    victim = directory / name
    victim.write_text(VICTIM_TEXT)
    victim.chmod(0o640)
    return victim


def b64url(data: bytes) -> str:
    """Unpadded base64url, as in JWTs."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def fake_jwt() -> str:
    """A token the daemon accepts (it checks the shape and exp only), valid for a day."""
    now = int(time.time())
    claims = msgspec.json.encode({"sub": "nobody-real", "iat": now, "exp": now + 86_400})
    return ".".join(
        (b64url(b'{"alg":"HS256","typ":"JWT"}'), b64url(claims), b64url(os.urandom(32)))
    )


# -- access levels ------------------------------------------------------------------------


def test_a_local_user_gets_read_only_and_is_refused_every_mutating_op(short_dir: Path) -> None:
    """Every op marked mutating is PERMISSION_DENIED for ro; every read op works; nothing moves."""
    assert {str(c.__struct_config__.tag) for c in MUTATING} >= {
        "configure",
        "start",
        "cancel",
        "delete_run",
        "test_token",
        "calibrate",
        "login",
        "logout",
        "test_login",
    }
    daemon = DaemonProcess(
        short_dir / "obsd.sock", short_dir / "state", ["--socket-group", "nogroup"]
    )
    with running(daemon):
        before = head_and_config(daemon.socket)
        refused = run_as(NOBODY, NOGROUP, [], lambda: ops_as(daemon.socket, MUTATING))
        allowed = run_as(NOBODY, NOGROUP, [], lambda: ops_as(daemon.socket, READING))
        after = head_and_config(daemon.socket)
    assert (refused["access"], refused["status_access"]) == ("ro", "ro")
    assert refused["outcomes"] == {
        str(c.__struct_config__.tag): "PERMISSION_DENIED" for c in MUTATING
    }
    assert allowed["outcomes"] == {
        str(c.__struct_config__.tag): READ_FAILURES.get(str(c.__struct_config__.tag), "success")
        for c in READING
    }
    assert after == before, "a refused command changed nothing: no event, same config"


@pytest.mark.parametrize("membership", ["supplementary", "primary"])
def test_a_member_of_the_admin_group_gets_read_write(
    short_dir: Path, admin_group: tuple[str, int], membership: str
) -> None:
    """The admin group gives rw, whether it is the peer's primary or a supplementary group."""
    name, gid = admin_group
    daemon = DaemonProcess(
        short_dir / "obsd.sock",
        short_dir / "state",
        ["--socket-group", "nogroup", "--admin-group", name],
    )
    primary, groups = (NOGROUP, [gid]) if membership == "supplementary" else (gid, [NOGROUP])

    def configure() -> Any:
        with Client(daemon.socket) as client:
            return [
                client.greeting["access"],
                client.request("configure", config={"max_attempts": 9}),
            ]

    with running(daemon):
        access, response = run_as(NOBODY, primary, groups, configure)
        events = Client(daemon.socket).request("events", types=["config_changed"])
    assert access == "rw" and response["success"], response
    assert events["data"]["items"][-1]["payload"]["actor"]["uid"] == NOBODY


def test_the_admin_group_alone_is_also_the_socket_group(
    short_dir: Path, admin_group: tuple[str, int]
) -> None:
    """With only --admin-group, the socket is 0660 to that group, and its members get rw."""
    name, gid = admin_group
    daemon = DaemonProcess(short_dir / "obsd.sock", short_dir / "state", ["--admin-group", name])

    def greet() -> Any:
        with Client(daemon.socket) as client:
            return client.greeting["access"]

    with running(daemon):
        info = daemon.socket.stat()
        assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o660, gid)
        assert run_as(NOBODY, NOGROUP, [gid], greet) == "rw"


# -- file modes ---------------------------------------------------------------------------


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Run with a umask (the daemon inherits it when started inside)."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.parametrize("group", [None, "nogroup"])
def test_socket_token_state_and_log_files_have_private_modes(
    short_dir: Path, group: str | None
) -> None:
    """Even under umask 000: socket 0600 (0660 with a group), token and segments 0600, dirs 0700."""
    args = ["--segment-bytes", str(SMALL_SEGMENT_BYTES)]
    if group:
        args += ["--socket-group", group]
    daemon = DaemonProcess(short_dir / "obsd.sock", short_dir / "state", args)
    with umask(0), running(daemon):
        socket_info = daemon.socket.stat()
        with Client(daemon.socket) as client:
            assert client.request("configure", config={"token": fake_jwt()})["success"]
            for n in range(MAX_CONFIGURES):
                assert client.request("configure", config={"max_attempts": n + 1})["success"]
            assert client.request("status")["data"]["log"]["segments"] > 1
    state = daemon.state_dir
    modes = {
        path.name: stat.S_IMODE(path.stat().st_mode)
        for path in [
            state,
            state / "log",
            state / "obs-token",
            state / "obsd.lock",
            *(state / "log").iterdir(),
        ]
    }
    expected_socket = (0o660, NOGROUP) if group else (0o600, 0)
    assert (stat.S_IMODE(socket_info.st_mode), socket_info.st_gid) == expected_socket
    assert modes == {name: 0o700 if name in ("state", "log") else 0o600 for name in modes}


# -- token secrecy ------------------------------------------------------------------------


def obsctl(sock: Path, *args: str, stdin: str | None = None) -> bytes:
    """Run obsctl; return everything it printed (stdout and stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "obsctl", "--socket", str(sock), *args],
        input=stdin.encode() if stdin is not None else None,
        capture_output=True,
        timeout=OBSCTL_TIMEOUT_S,
        check=False,
    )
    assert done.returncode in (0, 2), (args, done.stderr)
    return done.stdout + done.stderr


def raw_answers(sock: Path, run_id: str) -> bytes:
    """Every line the daemon sends to a raw client asking every read op and a full tail."""
    with Wire(sock) as wire:
        lines = [msgspec.json.encode(wire.greeting)]
        queries: list[tuple[str, dict[str, Any]]] = [
            ("status", {}),
            ("config", {}),
            ("health", {}),
            ("schema", {}),
            ("runs", {}),
            ("run", {"run_id": run_id}),
            ("events", {"limit": 1000}),
        ]
        for number, (op, fields) in enumerate(queries):
            lines.append(msgspec.json.encode(wire.request(op, number, **fields)))
        wire.send(b'{"id":"t","op":"tail","after_seq":0}\n')
        while not (line := wire.read_line()).startswith(b'{"type":"caught_up"'):
            lines.append(line)
    return b"\n".join(lines)


def test_the_token_never_leaves_its_file(short_dir: Path) -> None:
    """Grep for the token and its signature in everything obsd and obsctl write or show; and
    for the İTÜ password and the session cookies of a login made in the same run."""
    written: dict[str, bytes] = {}
    with registration(short_dir, opening_in_s=OPENING_IN_S, students=[STUDENT_WHO_LOGS_IN]) as reg:
        sock, token = reg.daemon.socket, reg.sim.token(STUDENT)
        token_file = short_dir / "pasted-token"
        token_file.write_text(f"Bearer {token}\n")
        written["configure --token-file"] = obsctl(
            sock, "configure", "--token-file", str(token_file)
        )
        written["configure --token -"] = obsctl(
            sock, "--json", "configure", "--token", "-", stdin=f"  bearer {token}  \n"
        )
        plan = reg.configure(
            obs_base_url=reg.sim.base_url,
            ntp_servers=[reg.sim.ntp_server],
            target=iso(reg.opening_ns),
            ecrn=["21234"],
            scrn=["20456"],
        )
        written["configure response"] = msgspec.json.encode(plan)
        written["test-token"] = obsctl(sock, "test-token") + obsctl(sock, "--json", "test-token")
        written["login"] = obsctl(sock, "login", stdin=f"ayse\n{PASSWORD}\n")
        written["login --check"] = obsctl(sock, "login", "--check") + obsctl(
            sock, "--json", "login", "--check"
        )
        written["calibrate"] = obsctl(sock, "--json", "calibrate")
        started = obsctl(sock, "--json", "start")
        written["start"] = started
        run_id = msgspec.json.decode(started)["data"]["run_id"]
        events = reg.wait_for("done", timeout_s=RUN_TIMEOUT_S)
        written["tail -f events"] = msgspec.json.encode(events)
        for args in (
            ["ping"],
            ["status"],
            ["config"],
            ["health"],
            ["runs"],
            ["schema"],
            ["events", "--limit", "1000"],
            ["tail", "--after", "0"],
            ["run", run_id],
            ["run", run_id, "--format", "md"],
        ):
            written["obsctl " + " ".join(args)] = obsctl(sock, *args)
            written["obsctl --json " + " ".join(args)] = obsctl(sock, "--json", *args)
        written["raw responses and tail"] = raw_answers(sock, run_id)
        pid = reg.daemon.process.pid if reg.daemon.process else 0
        for name in ("cmdline", "environ", "comm"):
            written[f"/proc/PID/{name}"] = Path(f"/proc/{pid}/{name}").read_bytes()
        posts = reg.posts()
        run_phase = reg.run_detail(run_id)["phase"]
        cookies = reg.sim.cookies_issued()
    written["daemon stderr"] = reg.daemon.stderr().encode()
    token_path = reg.daemon.state_dir / "obs-token"
    login_path = reg.daemon.state_dir / "itu-login"
    for path in sorted(reg.daemon.state_dir.rglob("*")):
        if path.is_file() and path not in (token_path, login_path):
            written[str(path.relative_to(short_dir))] = path.read_bytes()
    # The controls: the token was stored, used for real, and the run is in every report.
    assert token_path.read_text() == token and run_phase == "done"
    assert posts and {p.token_fingerprint for p in posts} == {fingerprint(token)}
    assert run_id.encode() in written["obsctl run " + run_id + " --format md"]
    assert len(cookies) >= 2, "the login checks were made, their sessions set"
    secrets = [token, token.rsplit(".", 1)[1], PASSWORD, *cookies]
    leaks = [name for name, data in written.items() if any(s.encode() in data for s in secrets)]
    print(
        f"\ntoken secrecy: {len(written)} outputs grepped "
        f"({sum(map(len, written.values())) / 1024:,.0f} KiB): "
        + ", ".join(f"{name} ({len(data):,} B)" for name, data in written.items())
    )
    assert leaks == [], f"the token, the password or a cookie appears in {leaks}"
    assert all(written.values()), "every source had something to grep"


# -- hostile input from a read-only user --------------------------------------------------


def flood(path: Path) -> dict[str, int]:
    """Endless, over-long and deeply nested lines on a few connections; count the answers."""
    counts = {"too_long": 0, "deep_refused": 0, "pongs": 0, "bytes": 0}
    for _ in range(HOSTILE_CONNECTIONS):
        with Wire(path) as wire:
            chunk = b"x" * SEND_CHUNK
            for _ in range(ENDLESS_LINE_BYTES // SEND_CHUNK):
                wire.send(chunk)
            wire.send(b"\n")
            counts["bytes"] += ENDLESS_LINE_BYTES
            for _ in range(LONG_LINES):
                wire.send(b"{" * LONG_LINE_BYTES + b"\n")
                counts["bytes"] += LONG_LINE_BYTES
            for _ in range(LONG_LINES + 1):
                response = wire.read_response()
                counts["too_long"] += response["error"]["code"] == "LINE_TOO_LONG"
            deep = b"[" * DEEP_NESTING + b"]" * DEEP_NESTING + b"\n"
            for _ in range(DEEP_LINES):
                wire.send(deep)
                response = wire.read_response()
                counts["deep_refused"] += response["success"] is False and response["id"] is None
                counts["bytes"] += len(deep)
            counts["pongs"] += wire.request("ping", "p")["data"] == {"pong": True}
    return counts


def test_hostile_lines_from_a_read_only_user_do_not_grow_memory(short_dir: Path) -> None:
    """Endless and over-long lines and deep nesting are refused; RSS stays within the bound."""
    daemon = DaemonProcess(
        short_dir / "obsd.sock", short_dir / "state", ["--socket-group", "nogroup"]
    )
    with running(daemon):
        with Wire(daemon.socket) as warm:
            warm.request("schema")
        before = vm_kib(daemon.pid)
        counts = run_as(NOBODY, NOGROUP, [], lambda: flood(daemon.socket))
        after, peak = vm_kib(daemon.pid), vm_kib(daemon.pid, "VmHWM")
        with Wire(daemon.socket) as witness:
            assert witness.request("ping")["data"] == {"pong": True}
    print(
        f"\nhostile input: {counts['bytes'] / MIB:,.0f} MiB over {HOSTILE_CONNECTIONS} "
        f"connections; VmRSS {before / 1024:.1f} -> {after / 1024:.1f} MiB, "
        f"VmHWM {peak / 1024:.1f} MiB"
    )
    assert counts == {
        "too_long": HOSTILE_CONNECTIONS * (LONG_LINES + 1),
        "deep_refused": HOSTILE_CONNECTIONS * DEEP_LINES,
        "pongs": HOSTILE_CONNECTIONS,
        "bytes": counts["bytes"],
    }
    assert after - before < RSS_GROWTH_LIMIT_KIB
    assert counts["bytes"] > HOSTILE_CONNECTIONS * ENDLESS_LINE_BYTES
    assert MAX_LINE_BYTES < LONG_LINE_BYTES and 2 * DEEP_NESTING <= MAX_LINE_BYTES


def test_stalled_tails_from_a_read_only_user_do_not_pin_memory(short_dir: Path) -> None:
    """Hundreds of tails that never read cost the daemon a few MiB: each holds one small chunk."""
    daemon = DaemonProcess(
        short_dir / "obsd.sock", short_dir / "state", ["--socket-group", "nogroup"]
    )

    def stall() -> int:
        wires = stalled_tails(daemon.socket)
        try:
            return vm_kib(daemon.pid)
        finally:
            closed(wires)

    with running(daemon):
        with Client(daemon.socket) as client:
            for n in range(PREFILL_EVENTS):
                assert client.request("configure", config={"max_attempts": n % 300 + 1})["success"]
        before = vm_kib(daemon.pid)
        during = run_as(NOBODY, NOGROUP, [], stall)
    print(f"\n{STALLED_TAILS} stalled tails: VmRSS {before / 1024:.1f} -> {during / 1024:.1f} MiB")
    assert during - before < STALLED_TAILS_LIMIT_KIB


def stalled_tails(socket_path: Path) -> list[Wire]:
    """STALLED_TAILS follow-tails from seq 0 that never read, each stuck in its replay."""
    wires = []
    for _ in range(STALLED_TAILS):
        wire = Wire(socket_path, rcvbuf=STALLED_RCVBUF)
        wire.send(b'{"id":1,"op":"tail","after_seq":0}\n')
        wires.append(wire)
    wait_until(
        lambda: all(select.select([w.sock], [], [], 0)[0] for w in wires),
        STALL_TIMEOUT_S,
        "every stalled tail began its replay",
    )
    return wires


def closed(wires: list[Wire]) -> int:
    for wire in wires:
        wire.close()
    return len(wires)


@pytest.mark.slow
def test_a_run_fires_on_time_while_stalled_tails_are_held(short_dir: Path) -> None:
    """300 never-reading tails of a read-only user do not hold the shot back or make it early."""
    with registration(
        short_dir, opening_in_s=STALLED_RUN_OPENING_S, daemon_args=["--socket-group", "nogroup"]
    ) as reg:
        with Client(reg.daemon.socket) as client:
            for n in range(PREFILL_EVENTS):
                assert client.request("configure", config={"max_attempts": n % 300 + 1})["success"]
        reg.plan(ecrn=["21234"], max_attempts=3)
        stalled = holding_as(
            NOBODY, NOGROUP, short_dir, lambda: stalled_tails(reg.daemon.socket), closed
        )
        with stalled as held:
            reg.start()
            done = reg.wait_for("done", timeout_s=RUN_TIMEOUT_S)[-1]
            posts = reg.posts()
    assert held == [STALLED_TAILS]
    assert done["payload"]["phase"] == "done", done
    assert posts and posts[0].arrival_ns >= reg.opening_ns, "never early"
    lateness_ms = (posts[0].arrival_ns - reg.opening_ns) / 1e6
    print(
        f"\nfirst POST {lateness_ms:.3f} ms after the opening, {STALLED_TAILS} stalled tails held"
    )


def test_a_user_over_the_connection_cap_is_told_and_an_admin_still_gets_in(
    short_dir: Path,
) -> None:
    """One user's connections are capped, with a clear refusal; the operator still gets in."""
    daemon = DaemonProcess(
        short_dir / "obsd.sock", short_dir / "state", ["--socket-group", "nogroup"]
    )

    def crowd() -> tuple[list[Wire], str | None]:
        wires = [Wire(daemon.socket) for _ in range(MAX_CONNECTIONS_PER_UID)]
        try:
            Client(daemon.socket).close()
        except ClientError as exc:
            return wires, str(exc)
        return wires, None

    def close_one(held: tuple[list[Wire], str | None]) -> dict[str, Any]:
        wires, refused = held
        wires.pop().close()
        with Client(daemon.socket) as again:
            after = again.request("ping")["success"]
        for wire in wires:
            wire.close()
        return {"refused": refused, "after_closing_one": after}

    crowded = holding_as(NOBODY, NOGROUP, short_dir, crowd, close_one)
    with running(daemon), crowded as results, Client(daemon.socket) as admin:
        assert admin.request("ping")["success"], "root connects while nobody is capped"
    (result,) = results
    assert result["refused"] is not None and "obsd refused the connection" in result["refused"]
    assert f"already holds {MAX_CONNECTIONS_PER_UID} connections" in result["refused"]
    assert result["after_closing_one"], "a closed connection frees its place"


# -- symlink tricks -----------------------------------------------------------------------


@pytest.mark.parametrize("dangling", [False, True])
def test_a_symlink_at_the_socket_path_is_refused(short_dir: Path, dangling: bool) -> None:
    """The daemon will not start on a symlink, and neither its target nor the link changes."""
    victim = short_dir / "not-created" if dangling else victim_file(short_dir)
    before = None if dangling else snapshot(victim)
    link = short_dir / "obsd.sock"
    link.symlink_to(victim)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "obsd",
            "--socket",
            str(link),
            "--state-dir",
            str(short_dir / "state"),
        ],
        capture_output=True,
        text=True,
        timeout=OBSCTL_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 1 and "not a socket" in done.stderr, done.stderr
    assert link.is_symlink() and os.readlink(link) == str(victim)
    if dangling:
        assert not os.path.lexists(victim)
    else:
        assert snapshot(victim) == before


def test_a_socket_swapped_for_a_symlink_is_not_removed_at_stop(short_dir: Path) -> None:
    """At stop the daemon unlinks only the socket it bound, never what replaced it."""
    victim = victim_file(short_dir)
    before = snapshot(victim)
    daemon = DaemonProcess(short_dir / "obsd.sock", short_dir / "state")
    with running(daemon):
        daemon.socket.unlink()
        daemon.socket.symlink_to(victim)
    assert daemon.socket.is_symlink() and snapshot(victim) == before


def plant_segment_links(daemon: DaemonProcess, victim: Path) -> int:
    """Symlinks at the next PLANTED_SEGMENTS segment names; return the head when planted."""
    with Client(daemon.socket) as client:
        head = int(client.greeting["head_seq"])
    for seq in range(head + 1, head + 1 + PLANTED_SEGMENTS):
        (daemon.state_dir / "log" / segment_name(seq)).symlink_to(victim)
    return head


def configure_until_refused(daemon: DaemonProcess) -> dict[str, Any] | None:
    """Configure until an answer is a failure (the rotation hit a planted link); return it."""
    with Client(daemon.socket) as client:
        for n in range(MAX_CONFIGURES):
            response = client.request("configure", config={"max_attempts": n + 1})
            if not response["success"]:
                return response
    return None


def test_a_symlink_at_the_next_segment_name_is_not_followed(short_dir: Path) -> None:
    """Rotation never writes through a planted link; the daemon keeps serving reads."""
    victim = victim_file(short_dir)
    before = snapshot(victim)
    daemon = DaemonProcess(
        short_dir / "obsd.sock", short_dir / "state", ["--segment-bytes", str(SMALL_SEGMENT_BYTES)]
    )
    daemon.start()
    try:
        plant_segment_links(daemon, victim)
        refused = configure_until_refused(daemon)
        with Client(daemon.socket) as client:
            assert client.request("status")["success"]
    finally:
        daemon.stop()
    assert refused is not None, "the log never rotated onto a planted name"
    assert snapshot(victim) == before
    planted = [path for path in (daemon.state_dir / "log").iterdir() if path.is_symlink()]
    assert len(planted) == PLANTED_SEGMENTS, "no planted link was replaced or written through"


def test_a_segment_that_cannot_be_created_is_a_storage_failure(short_dir: Path) -> None:
    """A refused rotation is STORAGE_FAILED and a clean exit, not an internal error."""
    victim = victim_file(short_dir)
    daemon = DaemonProcess(
        short_dir / "obsd.sock", short_dir / "state", ["--segment-bytes", str(SMALL_SEGMENT_BYTES)]
    )
    daemon.start()
    try:
        plant_segment_links(daemon, victim)
        refused = configure_until_refused(daemon)
    finally:
        daemon.stop()
    assert refused is not None and refused["error"]["code"] == "STORAGE_FAILED", refused
    assert "Traceback" not in daemon.stderr()


def test_a_symlink_at_the_lock_file_is_not_followed(short_dir: Path) -> None:
    """The daemon refuses a planted lock symlink or leaves its target alone."""
    victim = victim_file(short_dir)
    before = snapshot(victim)
    state = short_dir / "state"
    state.mkdir(mode=0o700)
    (state / "obsd.lock").symlink_to(victim)
    daemon = DaemonProcess(short_dir / "obsd.sock", state)
    try:
        daemon.start()
    except AssertionError:
        pass  # Refusing to start is a fine answer too.
    finally:
        if daemon.process is not None:
            daemon.stop()
    assert snapshot(victim) == before


@pytest.mark.parametrize("name", ["obs-token.tmp", "obs-token"])
def test_a_symlink_at_the_token_paths_is_not_written_through(short_dir: Path, name: str) -> None:
    """Storing a token never writes into a planted link's target, nor leaks the token."""
    victim = victim_file(short_dir)
    before = snapshot(victim)
    daemon = DaemonProcess(short_dir / "obsd.sock", short_dir / "state")
    token = fake_jwt()
    with running(daemon):
        (daemon.state_dir / name).symlink_to(victim)
        with Client(daemon.socket) as client:
            response = client.request("configure", config={"token": token})
            assert client.request("ping")["success"]
    assert snapshot(victim) == before
    assert token not in msgspec.json.encode(response).decode()
    if response["success"]:
        stored = daemon.state_dir / "obs-token"
        assert not stored.is_symlink() and stored.read_text() == token
        assert stat.S_IMODE(stored.stat().st_mode) == 0o600


def test_a_symlink_at_the_broken_copy_name_is_not_followed(short_dir: Path) -> None:
    """Repairing a torn tail keeps the original beside it, never through a planted link."""
    victim = victim_file(short_dir)
    before = snapshot(victim)
    daemon = DaemonProcess(short_dir / "obsd.sock", short_dir / "state")
    daemon.start()
    with Client(daemon.socket) as client:
        assert client.request("configure", config={"max_attempts": 5})["success"]
    daemon.stop(signal.SIGKILL)
    segment = next((daemon.state_dir / "log").glob("*.jsonl"))
    with segment.open("ab") as file:
        file.write(b'{"type":"config_changed","seq":99,"timesta')
    segment.with_name(segment.name + ".broken").symlink_to(victim)
    with running(daemon), Client(daemon.socket) as client:
        repairs = client.request("status")["data"]["log"]["repairs"]
    assert repairs == 1 and snapshot(victim) == before
    copy = segment.with_name(segment.name + ".broken.2")
    assert copy.is_file() and not copy.is_symlink()
    assert copy.read_bytes().endswith(b'"timesta')
