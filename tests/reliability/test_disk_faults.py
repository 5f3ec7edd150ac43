"""Disk faults in the real daemon: failed write/fdatasync, a full disk, a log damaged mid-way.

Failures are injected without touching the daemon's code: a small LD_PRELOAD library, compiled
here from FAULT_SHIM_SOURCE, wraps write(), fdatasync() and fsync() for files under one path
prefix (the log directory) and fails them with EIO after N calls, logging every call it sees.
The full disk is a real, small tmpfs mounted for the test (root or CAP_SYS_ADMIN needed; the
test skips where mounting is refused).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest

from obsctl.client import ClientError
from obsd.core.logformat import segment_first_seq
from obsd.daemon.ops.reads import LOW_DISK_BYTES
from obsd.sim import Simulator
from tests.conftest import DaemonProcess
from tests.harness import NS, Registration, iso, sim_config
from tests.reliability.terminal import show

# The shim. Every call on a file under FAULT_PREFIX is logged to FAULT_LOG as
# "<call> <n> <ok|short|fail> <path>"; FAULT_<CALL>_AFTER=N lets N such calls through and fails
# the rest with FAULT_ERRNO (EIO). FAULT_WRITE_SHORT makes the first failing write a short one
# (half the bytes), as a disk filling up mid-write does. With FAULT_ARM_FILE set, calls are
# neither counted nor failed until that file exists, so a test can pick the moment.
FAULT_SHIM_SOURCE: Final = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { WRITE, FDATASYNC, FSYNC, KINDS };
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef int (*sync_fn)(int);

static const char *const names[KINDS] = {"write", "fdatasync", "fsync"};
static write_fn real_write;
static sync_fn real_fdatasync, real_fsync;
static const char *prefix, *arm_file, *log_path;
static long fail_after[KINDS], calls[KINDS];
static int fail_errno = EIO, short_write;

static long env_long(const char *name) {
    const char *value = getenv(name);
    return value && *value ? atol(value) : -1;
}

__attribute__((constructor)) static void setup(void) {
    real_write = (write_fn)dlsym(RTLD_NEXT, "write");
    real_fdatasync = (sync_fn)dlsym(RTLD_NEXT, "fdatasync");
    real_fsync = (sync_fn)dlsym(RTLD_NEXT, "fsync");
    prefix = getenv("FAULT_PREFIX");
    arm_file = getenv("FAULT_ARM_FILE");
    log_path = getenv("FAULT_LOG");
    fail_after[WRITE] = env_long("FAULT_WRITE_AFTER");
    fail_after[FDATASYNC] = env_long("FAULT_FDATASYNC_AFTER");
    fail_after[FSYNC] = env_long("FAULT_FSYNC_AFTER");
    if (env_long("FAULT_ERRNO") > 0) fail_errno = (int)env_long("FAULT_ERRNO");
    short_write = env_long("FAULT_WRITE_SHORT") > 0;
}

static int watched(int fd, char *path, size_t size) {
    char link[64];
    ssize_t n;
    if (!prefix || !*prefix) return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, path, size - 1);
    if (n < 0) return 0;
    path[n] = 0;
    return strncmp(path, prefix, strlen(prefix)) == 0;
}

static void note(int kind, long number, const char *verdict, const char *path) {
    char line[4200];
    int fd, n;
    if (!log_path) return;
    n = snprintf(line, sizeof line, "%s %ld %s %s\n", names[kind], number, verdict, path);
    if (n < 0) return;
    if (n >= (int)sizeof line) n = (int)sizeof line - 1;
    fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return;
    real_write(fd, line, (size_t)n);
    close(fd);
}

/* 0: let the call through; 1: fail it; 2: make it short (the first failing write only). */
static int decide(int kind, long *number) {
    if (arm_file && *arm_file && access(arm_file, F_OK) != 0) {
        *number = 0;
        return 0;
    }
    *number = __atomic_add_fetch(&calls[kind], 1, __ATOMIC_SEQ_CST);
    if (fail_after[kind] < 0 || *number <= fail_after[kind]) return 0;
    return kind == WRITE && short_write && *number == fail_after[kind] + 1 ? 2 : 1;
}

ssize_t write(int fd, const void *buffer, size_t count) {
    char path[4096];
    long number;
    int verdict;
    if (!watched(fd, path, sizeof path)) return real_write(fd, buffer, count);
    verdict = decide(WRITE, &number);
    if (verdict == 0) {
        note(WRITE, number, "ok", path);
        return real_write(fd, buffer, count);
    }
    if (verdict == 2 && count > 1) {
        note(WRITE, number, "short", path);
        return real_write(fd, buffer, count / 2);
    }
    note(WRITE, number, "fail", path);
    errno = fail_errno;
    return -1;
}

static int sync_call(int kind, sync_fn real, int fd) {
    char path[4096];
    long number;
    if (!watched(fd, path, sizeof path)) return real(fd);
    if (decide(kind, &number) == 0) {
        note(kind, number, "ok", path);
        return real(fd);
    }
    note(kind, number, "fail", path);
    errno = fail_errno;
    return -1;
}

int fdatasync(int fd) { return sync_call(FDATASYNC, real_fdatasync, fd); }
int fsync(int fd) { return sync_call(FSYNC, real_fsync, fd); }
"""

# Compiling a 150-line C file; generous for a loaded CI machine.
COMPILE_TIMEOUT_S: Final = 60.0
# A daemon whose log failed must be gone this soon (it only has to cancel its tasks).
EXIT_TIMEOUT_S: Final = 20.0
# Commands sent while waiting for an injected failure to bite: far more than any fault here
# needs (on the full disk the last page of the segment takes ~7), so a fault that never fires
# fails the test instead of looping.
MAX_COMMANDS: Final = 40
# Rotating at the daemon's minimum segment size makes several segments out of a few events.
SMALL_SEGMENT_BYTES: Final = 4096
# The tmpfs is this much above the daemon's low-disk mark: `health` is happy at first, and
# filling it down to below the mark still leaves megabytes for appends.
TMPFS_HEADROOM_BYTES: Final = 8 * 1024 * 1024
# Once `health` must say "low", this much room is left: appends still fit many times over.
LOW_DISK_LEFT_BYTES: Final = 2 * 1024 * 1024
FILL_CHUNK_BYTES: Final = 1024 * 1024
# How many fill writes it takes at most to fill the whole tmpfs (with slack for short writes).
MAX_FILL_WRITES: Final = (LOW_DISK_BYTES + TMPFS_HEADROOM_BYTES) // FILL_CHUNK_BYTES + 64
MOUNT_TIMEOUT_S: Final = 30.0
# Polling a daemon for a state change: how often, and for how long at most.
POLL_INTERVAL_S: Final = 0.05
RUN_TIMEOUT_S: Final = 60.0

# Faults injected in this module, by kind; printed when the module is done.
# The opening of the full-disk run: room for calibration before the disk fills at T-3 s.
FULL_DISK_OPENING_S: Final = 8.0
INJECTED: Counter[str] = Counter()


@dataclass
class EnvDaemon(DaemonProcess):
    """A DaemonProcess started with extra environment variables (the fault shim's)."""

    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> EnvDaemon:
        """Spawn with `env` added to the environment, and wait until it greets."""
        with pytest.MonkeyPatch.context() as patch:
            for name, value in self.env.items():
                patch.setenv(name, value)
            super().start()
        return self


@dataclass(frozen=True)
class ShimCall:
    """One call the shim saw on a file under its prefix."""

    kind: str
    number: int
    verdict: str
    path: str


def shim_calls(log: Path) -> list[ShimCall]:
    """Every call the shim logged, in order."""
    if not log.exists():
        return []
    calls = []
    for line in log.read_text().splitlines():
        kind, number, verdict, path = line.split(" ", 3)
        calls.append(ShimCall(kind, int(number), verdict, path))
    return calls


def kill_quietly(daemon: DaemonProcess) -> None:
    """SIGKILL a daemon that is still running (cleanup after a failed test)."""
    if daemon.process is not None and daemon.process.poll() is None:
        daemon.process.kill()
        daemon.process.wait(timeout=EXIT_TIMEOUT_S)


@contextmanager
def running(daemon: DaemonProcess) -> Iterator[DaemonProcess]:
    """Start `daemon`; whatever happens, it is not running after the block."""
    try:
        yield daemon.start()
    finally:
        kill_quietly(daemon)


def exit_status(daemon: DaemonProcess) -> int:
    """Wait for a daemon that should be stopping on its own; return its exit status."""
    assert daemon.process is not None
    return daemon.process.wait(timeout=EXIT_TIMEOUT_S)


def ask(daemon: DaemonProcess, op: str, **fields: Any) -> dict[str, Any]:
    """One request on a fresh connection."""
    with daemon.client() as client:
        return client.request(op, **fields)


def all_events(daemon: DaemonProcess) -> list[dict[str, Any]]:
    """The whole log, read through the `events` op (bounded by the head seq)."""
    items: list[dict[str, Any]] = []
    with daemon.client() as client:
        head = client.greeting["head_seq"]
        for _ in range(head // 1000 + 1):
            page = client.request("events", after_seq=len(items), limit=1000)["data"]
            items.extend(page["items"])
            if not page["has_more"]:
                break
    return items


@dataclass
class Refusal:
    """How the command that hit the failure ended: an error response, or a closed connection."""

    response: dict[str, Any] | None
    crn: str


def configure_until_refused(daemon: DaemonProcess) -> tuple[list[str], Refusal]:
    """Configure a new ECRN per command until one is not acknowledged; return the acked ones."""
    acked: list[str] = []
    with daemon.client() as client:
        for number in range(MAX_COMMANDS):
            crn = f"{10000 + number}"
            try:
                response = client.request("configure", config={"ecrn": [crn]})
            except ClientError:
                return acked, Refusal(None, crn)
            if not response["success"]:
                return acked, Refusal(response, crn)
            acked.append(crn)
    raise AssertionError(f"no command was refused in {MAX_COMMANDS}: the fault never fired")


def configured_ecrns(events: list[dict[str, Any]]) -> list[str]:
    """The single ECRN of each config_changed event, in log order."""
    return [
        e["payload"]["config"]["ecrn"][0]
        for e in events
        if e["type"] == "config_changed" and e["payload"]["config"]["ecrn"]
    ]


def assert_gap_free(events: list[dict[str, Any]]) -> None:
    """Seqs run 1, 2, 3... with no gap or repeat."""
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


@pytest.fixture(scope="module", autouse=True)
def print_injected(pytestconfig: pytest.Config) -> Iterator[None]:
    """Print how many faults of each kind this module injected."""
    yield
    show(pytestconfig, f"disk faults injected by kind: {dict(sorted(INJECTED.items()))}")


@pytest.fixture(scope="module")
def shim() -> Iterator[Path]:
    """The fault shim, compiled for this run (the test fails under CI if `cc` is missing)."""
    compiler = shutil.which("cc")
    if compiler is None:
        message = "no C compiler (cc) on PATH: the LD_PRELOAD fault shim cannot be built"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with tempfile.TemporaryDirectory(prefix="obsd-shim-") as directory:
        source = Path(directory) / "faultshim.c"
        library = Path(directory) / "faultshim.so"
        source.write_text(FAULT_SHIM_SOURCE)
        built = subprocess.run(
            [
                compiler,
                "-shared",
                "-fPIC",
                "-O2",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-o",
                str(library),
                str(source),
                "-ldl",
            ],
            capture_output=True,
            text=True,
            timeout=COMPILE_TIMEOUT_S,
            check=False,
        )
        assert built.returncode == 0, built.stderr
        yield library


def shim_env(library: Path, log_dir: Path, call_log: Path, **settings: str) -> dict[str, str]:
    """The environment that loads the shim on `log_dir` with FAULT_* `settings`."""
    return {
        "LD_PRELOAD": str(library),
        "FAULT_PREFIX": str(log_dir),
        "FAULT_LOG": str(call_log),
        **{f"FAULT_{k.upper()}": v for k, v in settings.items()},
    }


# -- a write or fdatasync fails under a command -----------------------------------------------


@dataclass(frozen=True)
class DiskFault:
    """One way a log write or sync fails, and what the daemon must then say."""

    name: str
    settings: dict[str, str]
    # The shim call that fails, and the words of the daemon's message naming it.
    call: str
    message: str
    segment_bytes: int | None = None
    # Whether the failed command's event can be on disk after all (the write itself went
    # through: only the sync failed). The protocol calls that outcome unknown.
    event_may_survive: bool = True
    # A short write leaves a torn last line, which the next start must cut off.
    torn_tail: bool = False


# 2 calls of each kind happen at start-up (log_created, daemon_started): 5 lets 3 commands in.
FAIL_AFTER_CALLS: Final = "5"
DISK_FAULTS: Final = [
    DiskFault(
        "fdatasync", {"fdatasync_after": FAIL_AFTER_CALLS}, "fdatasync", "syncing the log in"
    ),
    DiskFault(
        "write", {"write_after": FAIL_AFTER_CALLS}, "write", "write to", event_may_survive=False
    ),
    DiskFault(
        "short_write",
        {"write_after": FAIL_AFTER_CALLS, "write_short": "1"},
        "write",
        "write to",
        event_may_survive=False,
        torn_tail=True,
    ),
    # The directory fsync after a rotation (the first one, at log creation, passes); the
    # daemon words its failure as "syncing the log in <log dir> failed".
    DiskFault(
        "dir_fsync_at_rotation",
        {"fsync_after": "1"},
        "fsync",
        "syncing the log in",
        segment_bytes=SMALL_SEGMENT_BYTES,
    ),
]


@dataclass
class FaultOutcome:
    """What happened when a fault hit a stream of commands, and after a clean restart."""

    fault: DiskFault
    log_dir: Path
    acked: list[str]
    refusal: Refusal
    status: int
    stderr: str
    startup_calls: list[ShimCall]
    calls: list[ShimCall]
    replayed: list[dict[str, Any]]
    restarted_status: dict[str, Any]
    restarted_health: dict[str, Any]
    broken_copies: list[str]


def provoke(fault: DiskFault, library: Path, directory: Path) -> FaultOutcome:
    """Run commands under the shim until the fault bites, then restart without it."""
    state = directory / "state"
    log_dir = state / "log"
    call_log = directory / "calls.log"
    extra = [] if fault.segment_bytes is None else ["--segment-bytes", str(fault.segment_bytes)]
    faulty = EnvDaemon(
        directory / "obsd.sock",
        state,
        extra,
        env=shim_env(library, log_dir, call_log, **fault.settings),
    )
    with running(faulty):
        startup = shim_calls(call_log)
        acked, refusal = configure_until_refused(faulty)
        status = exit_status(faulty)
        stderr = faulty.stderr()
    calls = shim_calls(call_log)
    INJECTED.update(f"{c.kind}_{c.verdict}" for c in calls if c.verdict != "ok")
    with running(DaemonProcess(directory / "obsd.sock", state, extra)) as plain:
        replayed = all_events(plain)
        restarted_status = ask(plain, "status")["data"]
        restarted_health = ask(plain, "health")["data"]
        assert plain.stop() == 0, plain.stderr()
    broken = sorted(p.name for p in log_dir.iterdir() if ".broken" in p.name)
    return FaultOutcome(
        fault,
        log_dir,
        acked,
        refusal,
        status,
        stderr,
        startup,
        calls,
        replayed,
        restarted_status,
        restarted_health,
        broken,
    )


@pytest.fixture(scope="module", params=DISK_FAULTS, ids=lambda fault: fault.name)
def outcome(request: pytest.FixtureRequest, shim: Path) -> Iterator[FaultOutcome]:
    """Each fault provoked once, shared by the tests that judge it."""
    directory = Path(tempfile.mkdtemp(prefix="obsd-", dir="/tmp"))
    try:
        yield provoke(request.param, shim, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_a_failed_write_or_sync_is_never_acknowledged_and_stops_the_daemon(
    outcome: FaultOutcome,
) -> None:
    """The command under the failure is not acked; the daemon exits 1 naming the failure."""
    refusal = outcome.refusal
    if refusal.response is not None:
        assert refusal.response["error"]["code"] == "STORAGE_FAILED", refusal.response
    assert outcome.acked, "the fault fired before any command was acknowledged"
    assert outcome.status == 1, outcome.stderr
    assert "the event log failed" in outcome.stderr, outcome.stderr
    assert outcome.fault.message in outcome.stderr, outcome.stderr
    assert os.strerror(errno.EIO) in outcome.stderr, outcome.stderr
    assert str(outcome.log_dir) in outcome.stderr, outcome.stderr


def test_a_failed_write_or_sync_is_never_retried(outcome: FaultOutcome) -> None:
    """After the one failed call the daemon touches the log no more: no retry, no appends."""
    calls = outcome.calls
    failed = [index for index, call in enumerate(calls) if call.verdict == "fail"]
    assert len(failed) == 1, calls
    assert failed[0] == len(calls) - 1, f"calls after the failure: {calls[failed[0] + 1 :]}"
    assert calls[-1].kind == outcome.fault.call
    assert all(c.verdict == "ok" for c in outcome.startup_calls), "failed during start-up"
    if outcome.fault.call in ("write", "fdatasync"):
        # Commands are sequential, so each acked one cost exactly one call of the failing kind.
        by_commands = [
            c
            for c in calls[len(outcome.startup_calls) :]
            if c.kind == outcome.fault.call and c.verdict == "ok"
        ]
        assert len(by_commands) == len(outcome.acked)


def test_after_a_storage_failure_a_clean_restart_replays_every_acked_command(
    outcome: FaultOutcome,
) -> None:
    """Restarted without the fault, the log replays: acked commands are all there, gap-free."""
    events = outcome.replayed
    assert_gap_free(events)
    ecrns = configured_ecrns(events)
    acked, refused = outcome.acked, outcome.refusal.crn
    assert ecrns[: len(acked)] == acked
    # The refused command's outcome is unknown (docs/protocol.md): its event may be there only
    # if its write went through.
    allowed = ([], [refused]) if outcome.fault.event_may_survive else ([],)
    assert ecrns[len(acked) :] in allowed, ecrns
    log = outcome.restarted_status["log"]
    assert log["damage"] is None and log["failure"] is None
    assert outcome.restarted_health["log"]["writable"] is True
    # Written after the replay: daemon_started, and log_repaired if a torn tail was cut.
    written_since = 2 if outcome.fault.torn_tail else 1
    assert outcome.restarted_status["daemon"]["replayed_events"] == len(events) - written_since
    if outcome.fault.torn_tail:
        assert log["repairs"] == 1 and len(outcome.broken_copies) == 1
        assert [e["type"] for e in events].count("log_repaired") == 1
    else:
        assert log["repairs"] == 0 and outcome.broken_copies == []
    if outcome.fault.segment_bytes is not None:
        assert log["segments"] >= 2, "the fault was meant to hit a rotation"


def test_the_command_that_hit_the_failure_is_answered_storage_failed(outcome: FaultOutcome) -> None:
    """The client whose command hit the failure is told STORAGE_FAILED, not just cut off."""
    assert outcome.refusal.response is not None, "the connection was closed without an answer"
    assert outcome.refusal.response["error"]["code"] == "STORAGE_FAILED"


def test_the_storage_failure_that_stops_the_daemon_is_logged_as_an_error(
    outcome: FaultOutcome,
) -> None:
    """An operator filtering for errors sees why the daemon stopped."""
    errors = [line for line in outcome.stderr.splitlines() if " ERROR " in line]
    assert any(outcome.fault.message in line for line in errors), outcome.stderr


# -- a sync fails in the middle of a registration run ----------------------------------------


def wait_for_phase(reg: Registration, phase: str) -> None:
    """Poll `status` until the active run reaches `phase` (bounded)."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        if reg.request("status")["data"]["phase"] == phase:
            return
        time.sleep(POLL_INTERVAL_S)
    raise AssertionError(f"the run never reached {phase}")


def wait_for_end(reg: Registration, run_id: str) -> dict[str, Any]:
    """Poll the `run` op until the run has ended (bounded); return it."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        run = reg.run_detail(run_id)
        if run["phase"] in ("done", "failed", "cancelled"):
            return run
        time.sleep(POLL_INTERVAL_S)
    raise AssertionError(f"run {run_id} did not end in {RUN_TIMEOUT_S} s")


def test_a_sync_failure_during_a_run_stops_the_daemon_and_the_run_resumes_after(
    shim: Path, short_dir: Path
) -> None:
    """The runner's append fails: exit 1; restarted cleanly, the run ends, nothing re-sent."""
    state = short_dir / "state"
    arm = short_dir / "arm"
    call_log = short_dir / "calls.log"
    env = shim_env(shim, state / "log", call_log, fdatasync_after="0", arm_file=str(arm))
    config = sim_config(opening_in_s=4.0)
    assert config.opening_at is not None
    with Simulator(config).serve_in_thread() as sim:
        faulty = EnvDaemon(short_dir / "obsd.sock", state, env=env)
        with running(faulty):
            reg = Registration(faulty, sim, int(config.opening_at * NS))
            reg.plan(ecrn=["21234"], scrn=["20456"])
            run_id = reg.start()
            wait_for_phase(reg, "waiting")
            # The next durable append is the answer to the first POST (crn_update).
            arm.touch()
            status = exit_status(faulty)
            stderr = faulty.stderr()
        posts_at_failure = len(reg.posts())
        with running(DaemonProcess(short_dir / "obsd.sock", state)) as plain:
            reg = Registration(plain, sim, reg.opening_ns)
            run = wait_for_end(reg, run_id)
            events = all_events(plain)
            assert plain.stop() == 0, plain.stderr()
        posts = reg.posts()
    calls = shim_calls(call_log)
    INJECTED.update(f"{c.kind}_{c.verdict}_in_run" for c in calls if c.verdict != "ok")
    assert status == 1, stderr
    # The answer's sync failed after the shot: the answer was kept aside, then the daemon stopped.
    assert f"run {run_id} stopped after its shot" in stderr and "kept aside" in stderr, stderr
    assert os.strerror(errno.EIO) in stderr
    failures = [c for c in calls if c.verdict == "fail"]
    assert len(failures) == 1 and failures[0].kind == "fdatasync", calls
    assert calls[-1] == failures[0], "nothing touched the log after the failed fdatasync"
    assert posts_at_failure == 1
    assert any(e["type"] == "run_resumed" for e in events)
    assert run["phase"] == "done", run
    assert {c["crn"]: c["state"] for c in run["crns"]} == {"21234": "success", "20456": "success"}
    # The answer had been written (only its sync failed), so the restart knew the drop had
    # succeeded and sent nothing more.
    assert len(posts) == 1, [p.body for p in posts]


# -- a full disk --------------------------------------------------------------------------------


@contextmanager
def tmpfs(path: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of `size_bytes` mounted on `path` for the block; unmounted even on failure."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small file system to fill")
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        timeout=MOUNT_TIMEOUT_S,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"mounting a tmpfs was refused ({mounted.stderr.strip()}): needs root or CAP_SYS_ADMIN"
        )
    try:
        yield path
    finally:
        unmounted = subprocess.run(
            ["umount", str(path)],
            capture_output=True,
            text=True,
            timeout=MOUNT_TIMEOUT_S,
            check=False,
        )
        if unmounted.returncode != 0:
            subprocess.run(["umount", "-l", str(path)], timeout=MOUNT_TIMEOUT_S, check=False)


def fill(path: Path, leave_bytes: int) -> int:
    """Append to the filler file at `path` until at most `leave_bytes` are free; return free."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        for _ in range(MAX_FILL_WRITES):
            free = shutil.disk_usage(path.parent).free
            if free <= leave_bytes:
                return free
            try:
                os.write(fd, b"\0" * min(FILL_CHUNK_BYTES, free - leave_bytes))
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return shutil.disk_usage(path.parent).free
    finally:
        os.close(fd)
    raise AssertionError(f"{path.parent} did not fill in {MAX_FILL_WRITES} writes")


def test_a_full_disk_is_reported_by_health_before_it_bites_then_refuses_commands(
    short_dir: Path,
) -> None:
    """Low space: `health` warns while appends still work. No space: no ack, exit 1."""
    with tmpfs(short_dir / "fs", LOW_DISK_BYTES + TMPFS_HEADROOM_BYTES) as disk:
        state = disk / "state"
        filler = disk / "filler"
        daemon = DaemonProcess(short_dir / "obsd.sock", state)
        with running(daemon):
            roomy = ask(daemon, "health")["data"]
            assert roomy["disk"]["low"] is False and roomy["ok"] is True, roomy
            assert roomy["disk"]["room_for_a_run"] is True
            left = fill(filler, LOW_DISK_LEFT_BYTES)
            low = ask(daemon, "health")["data"]
            assert low["disk"]["low"] is True and low["ok"] is False, low
            assert low["disk"]["free_bytes"] == left
            assert any("MiB free on the state disk" in p for p in low["problems"]), low
            assert low["disk"]["room_for_a_run"] is True, "low, but a run still has room"
            # Low, not yet full: commands still work, so the warning came before the bite.
            assert ask(daemon, "configure", config={"ecrn": ["11111"]})["success"]
            assert fill(filler, 0) == 0
            INJECTED["enospc_full_tmpfs"] += 1
            full = ask(daemon, "health")["data"]
            assert full["disk"]["free_bytes"] == 0 and full["disk"]["low"] is True
            # The last page of the segment may still hold a line or two; then writes fail.
            acked, refusal = configure_until_refused(daemon)
            status = exit_status(daemon)
            stderr = daemon.stderr()
        if refusal.response is not None:
            assert refusal.response["error"]["code"] == "STORAGE_FAILED", refusal.response
        assert status == 1, stderr
        assert "the event log failed" in stderr and os.strerror(errno.ENOSPC) in stderr, stderr
        # Room again: a restart replays everything that was acknowledged.
        filler.unlink()
        with running(DaemonProcess(short_dir / "obsd.sock", state)) as plain:
            events = all_events(plain)
            assert plain.stop() == 0, plain.stderr()
    assert_gap_free(events)
    ecrns = configured_ecrns(events)
    assert ecrns[: len(acked) + 1] == ["11111", *acked]
    assert ecrns[len(acked) + 1 :] == [], "a write that failed left no event"


def test_start_is_refused_when_no_room_can_be_reserved_for_the_runs_log(
    short_dir: Path,
) -> None:
    """A run needs its log room allocated first; on a full disk `start` says so and writes
    nothing, while `health` reports the disk."""
    with tmpfs(short_dir / "fs", LOW_DISK_BYTES + TMPFS_HEADROOM_BYTES) as disk:
        config = sim_config(opening_in_s=60.0)
        assert config.opening_at is not None
        with Simulator(config).serve_in_thread() as sim:
            daemon = DaemonProcess(short_dir / "obsd.sock", disk / "state")
            with running(daemon):
                reg = Registration(daemon, sim, int(config.opening_at * NS))
                reg.plan(ecrn=["21234"])
                head = ask(daemon, "status")["data"]["log"]["head_seq"]
                assert fill(disk / "filler", 0) == 0
                refused = reg.request("start")
                health = ask(daemon, "health")["data"]
                after = ask(daemon, "status")["data"]
                (disk / "filler").unlink()
                started = reg.request("start")
    assert refused["error"]["code"] == "NOT_READY", refused
    assert "no room can be reserved on the state disk" in refused["error"]["message"]
    assert os.strerror(errno.ENOSPC) in refused["error"]["message"]
    assert after["log"]["head_seq"] == head and after["active_run"] is None, "nothing written"
    assert health["disk"]["room_for_a_run"] is False and health["ok"] is False, health
    assert any("a run cannot reserve the 1024 KiB its log needs" in p for p in health["problems"])
    assert started["success"], "with room again, it starts"


@dataclass
class ShotThroughFailure:
    """A run whose log fails 3 s before its shot, then a plain restart: what each one did."""

    status: int | None  # None: the daemon never had to stop (the log took everything)
    stderr: str
    posts_at_exit: list[Any]
    run: dict[str, Any]
    events: list[dict[str, Any]]
    restarted: str
    posts: list[Any]
    opening_ns: int


def shot_through_failure(
    short_dir: Path,
    state: Path,
    daemon: DaemonProcess,
    fail: Callable[[], None],
    recover: Callable[[], None] = lambda: None,
) -> ShotThroughFailure:
    """Start a run on `daemon`, `fail` 3 s before the opening; `recover`, restart plainly."""
    config = sim_config(opening_in_s=FULL_DISK_OPENING_S)
    assert config.opening_at is not None
    opening_ns = int(config.opening_at * NS)
    with Simulator(config).serve_in_thread() as sim:
        with running(daemon):
            reg = Registration(daemon, sim, opening_ns)
            reg.plan(ecrn=["21234"])
            run_id = reg.start()
            # The scenario's moment, not a synchronisation: the log fails at T-3 s.
            time.sleep(max(0.0, (opening_ns - 3 * NS - sim.true_time_ns()) / NS))
            fail()
            wait_for_end_or_exit(reg, daemon, run_id)
            status = daemon.process.poll() if daemon.process else None
            stderr = daemon.stderr()
        posts_at_exit = reg.posts()
        recover()
        with running(DaemonProcess(short_dir / "obsd.sock", state)) as plain:
            reg = Registration(plain, sim, opening_ns)
            run = wait_for_end(reg, run_id)
            events = all_events(plain)
            restarted = plain.stderr()
            assert plain.stop() == 0, restarted
        posts = reg.posts()
    return ShotThroughFailure(
        status, stderr, posts_at_exit, run, events, restarted, posts, opening_ns
    )


def wait_for_end_or_exit(reg: Registration, daemon: DaemonProcess, run_id: str) -> None:
    """Until the daemon exits (it stops itself after an unrecorded shot) or the run ends."""
    assert daemon.process is not None
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while daemon.process.poll() is None and time.monotonic() < deadline:
        try:
            if reg.run_detail(run_id)["phase"] in ("done", "failed", "cancelled"):
                return
        except (ClientError, OSError):
            pass  # stopping: the next poll sees the exit
        time.sleep(POLL_INTERVAL_S)


def assert_shot_once_on_time(outcome: ShotThroughFailure) -> None:
    """On time, never early, and never twice: the restart knew what the stopped daemon sent."""
    first = outcome.posts[0]
    assert first.arrival_ns >= outcome.opening_ns, "never early"
    assert outcome.posts_at_exit[:1] == [first], "the POST went before the daemon stopped"
    assert len(outcome.posts) == 1, "the restart knew the shot: nothing was sent twice"
    assert outcome.run["phase"] == "done" and outcome.run["crns"][0]["state"] == "success"
    assert [e["type"] for e in outcome.events].count("request_armed") == 1
    assert_gap_free(outcome.events)


@pytest.mark.slow
def test_a_write_that_fails_3_s_before_the_shot_does_not_stop_it(
    shim: Path, short_dir: Path
) -> None:
    """Every write to the log fails from T-3 s (ENOSPC): the POST goes on time anyway, the
    daemon stops saying what it did, and the restart puts the shot on record (kept aside)."""
    state, arm = short_dir / "state", short_dir / "arm"
    env = shim_env(
        shim,
        state / "log",
        short_dir / "calls.log",
        write_after="0",
        errno=str(errno.ENOSPC),
        arm_file=str(arm),
    )
    daemon = EnvDaemon(short_dir / "obsd.sock", state, env=env)
    refused: list[dict[str, Any]] = []

    def fail() -> None:
        arm.touch()
        # A command hits the failure first: the daemon must still wait for the shot to stop.
        refused.append(ask(daemon, "configure", config={"max_attempts": 9}))

    outcome = shot_through_failure(short_dir, state, daemon, fail)
    INJECTED["write_fail_3_s_before_the_shot"] += 1
    assert refused[0]["error"]["code"] == "STORAGE_FAILED", refused
    assert outcome.status == 1, outcome.stderr
    assert "was sent anyway" in outcome.stderr, outcome.stderr
    assert os.strerror(errno.ENOSPC) in outcome.stderr and "kept aside" in outcome.stderr
    assert "events kept aside when the log failed at a shot" in outcome.restarted
    assert_shot_once_on_time(outcome)


@pytest.mark.slow
def test_a_disk_that_fills_3_s_before_the_shot_does_not_stop_it(short_dir: Path) -> None:
    """A real tmpfs filled at T-3 s: whatever the log could still take (the last page of its
    segment may hold a few records), the POST is on time, and it is never sent twice."""
    with tmpfs(short_dir / "fs", LOW_DISK_BYTES + TMPFS_HEADROOM_BYTES) as disk:
        state = disk / "state"

        def fill_up() -> None:
            assert fill(disk / "filler", 0) == 0

        outcome = shot_through_failure(
            short_dir,
            state,
            DaemonProcess(short_dir / "obsd.sock", state),
            fill_up,
            (disk / "filler").unlink,
        )
    INJECTED["enospc_3_s_before_the_shot"] += 1
    stopped = outcome.status is not None
    print(f"\nthe daemon {'stopped after the shot' if stopped else 'never had to stop'}")
    if stopped:
        assert outcome.status == 1 and "was sent anyway" in outcome.stderr, outcome.stderr
    assert_shot_once_on_time(outcome)


# -- damage in the middle of the log, in an earlier segment ----------------------------------


def segments(log_dir: Path) -> list[Path]:
    """The log's segment files, oldest first."""
    named = [
        (first, p) for p in log_dir.iterdir() if (first := segment_first_seq(p.name)) is not None
    ]
    return [p for _, p in sorted(named)]


def test_damage_in_an_earlier_segment_is_surfaced_and_every_command_is_refused(
    short_dir: Path,
) -> None:
    """A bad record in a rotated-out segment: status and health say where; commands refused."""
    state = short_dir / "state"
    log_dir = state / "log"
    extra = ["--segment-bytes", str(SMALL_SEGMENT_BYTES)]
    config = sim_config(opening_in_s=3600.0)
    assert config.opening_at is not None
    with Simulator(config).serve_in_thread() as sim:
        with running(DaemonProcess(short_dir / "obsd.sock", state, extra)) as daemon:
            reg = Registration(daemon, sim, int(config.opening_at * NS))
            reg.plan(ecrn=["21234"], target=iso(sim.true_time_ns() + 3600 * NS))
            run_id = reg.start()
            assert reg.request("cancel")["success"]
            cancelled_seq = reg.request("status")["data"]["log"]["head_seq"]
            # Fill segments until one lies wholly after the run and is not the last one.
            for number in range(MAX_COMMANDS):
                after = [
                    p for p in segments(log_dir) if (segment_first_seq(p.name) or 0) > cancelled_seq
                ]
                if len(after) >= 2:
                    break
                assert reg.configure(max_attempts=10 + number)["success"]
            else:
                raise AssertionError(f"{MAX_COMMANDS} commands did not rotate the log enough")
            assert daemon.stop() == 0, daemon.stderr()
        victim = after[0]
        lines = victim.read_bytes().splitlines(keepends=True)
        assert len(lines) >= 3, "the victim needs a record after the bad one"
        lines[1] = b"#" * (len(lines[1]) - 1) + b"\n"
        victim.write_bytes(b"".join(lines))
        INJECTED["corrupt_record_in_earlier_segment"] += 1
        bad_seq = (segment_first_seq(victim.name) or 0) + 1
        before = {p.name: p.read_bytes() for p in log_dir.iterdir()}
        with running(DaemonProcess(short_dir / "obsd.sock", state, extra)) as daemon:
            reg = Registration(daemon, sim, reg.opening_ns)
            status = reg.request("status")["data"]
            health = reg.request("health")["data"]
            refused = {
                "configure": reg.request("configure", config={"ecrn": ["22002"]}),
                "start": reg.request("start"),
                "delete_run": reg.request("delete_run", run_id=run_id),
                "test_token": reg.request("test_token"),
                "calibrate": reg.request("calibrate"),
            }
            readable = reg.run_detail(run_id)
            events = all_events(daemon)
            assert daemon.stop() == 0, daemon.stderr()
    damage = status["log"]["damage"]
    assert (damage["segment"], damage["line"]) == (victim.name, 2), damage
    assert status["log"]["head_seq"] == bad_seq - 1
    assert health["ok"] is False and health["log"]["writable"] is False
    assert any(victim.name in p and "damaged" in p for p in health["problems"]), health
    codes = {
        op: response["error"]["code"] if not response["success"] else "success"
        for op, response in refused.items()
    }
    assert codes == dict.fromkeys(refused, "LOG_DAMAGED"), codes
    assert readable["phase"] == "cancelled"
    assert_gap_free(events)
    assert len(events) == bad_seq - 1, "reads serve exactly the part before the damage"
    after_files = {p.name: p.read_bytes() for p in log_dir.iterdir()}
    assert after_files == before, "nothing was appended, repaired or copied"


# -- a whole record the replay must refuse -------------------------------------------------------

# A cancelled run's records, then a whole one the replay must refuse though it is JSON:
# (label, its type, its payload beside the run's id, how far past the head its seq is, what
# the damage says).
IMPOSSIBLE_TAILS: Final = [
    ("unknown phase", "state", {"phase": "flying"}, 1, "undecodable record"),
    ("registering after cancel", "state", {"phase": "registering"}, 1, "has already ended"),
    ("seq jump", "log", {"message": "hello", "level": "info"}, 2, "where"),
]


@pytest.mark.parametrize(
    ("kind", "payload", "seq_ahead", "says"),
    [case[1:] for case in IMPOSSIBLE_TAILS],
    ids=[case[0] for case in IMPOSSIBLE_TAILS],
)
def test_an_impossible_last_record_is_damage_the_daemon_serves_read_only(
    short_dir: Path, kind: str, payload: dict[str, Any], seq_ahead: int, says: str
) -> None:
    """Up every time, read-only, the damage shown; never cut as torn, and nothing resumed."""
    state = short_dir / "state"
    config = sim_config(opening_in_s=3600.0)
    assert config.opening_at is not None
    with Simulator(config).serve_in_thread() as sim:
        with running(DaemonProcess(short_dir / "obsd.sock", state)) as daemon:
            reg = Registration(daemon, sim, int(config.opening_at * NS))
            reg.plan(ecrn=["21234"], target=iso(sim.true_time_ns() + 3600 * NS))
            run_id = reg.start()
            assert reg.request("cancel")["success"]
            assert daemon.stop() == 0, daemon.stderr()
        (segment,) = segments(state / "log")
        head = len(segment.read_bytes().splitlines())
        record = {
            "type": kind,
            "seq": head + seq_ahead,
            "timestamp": "2026-12-01T00:00:00Z",
            "payload": {"run_id": run_id, **payload},
        }
        with segment.open("ab") as log:
            log.write(json.dumps(record).encode() + b"\n")
        before = segment.read_bytes()
        with running(DaemonProcess(short_dir / "obsd.sock", state)) as daemon:
            reg = Registration(daemon, sim, reg.opening_ns)
            status = reg.request("status")["data"]
            health = reg.request("health")["data"]
            start = reg.request("start")
            assert daemon.stop() == 0, daemon.stderr()
        posts = reg.posts()
    damage = status["log"]["damage"]
    assert damage is not None and damage["line"] == head + 1 and says in damage["reason"], damage
    assert status["active_run"] is None and posts == [], "nothing resumed, nothing sent"
    assert health["ok"] is False and health["log"]["writable"] is False
    assert start["error"]["code"] == "LOG_DAMAGED", start
    assert segment.read_bytes() == before, "a whole record is never cut off as a torn write"
