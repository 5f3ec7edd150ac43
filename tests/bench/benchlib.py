"""Helpers shared by the benchmark scripts: processes, percentiles, machine and docs sections."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, NoReturn

from obsctl.client import Client, ClientError
from obsd import __version__
from obsd.core.timing import NS

REPO: Final = Path(__file__).resolve().parents[2]
DOC_PATH: Final = REPO / "docs" / "performance.md"
DOC_HEADER: Final = (
    "# Performance\n\n"
    "Figures measured by the scripts under `tests/bench/` (see tests/bench/README.md). Each\n"
    "section is rewritten by the script named in its markers; do not edit between them.\n"
)
BIN_DIR: Final = Path(sys.executable).parent  # obsd and obsctl sit beside the interpreter.

# Readiness polling: finer than the millisecond figures reported, coarse enough to leave the
# CPU to the starting daemon on a 2-core machine.
POLL_INTERVAL_S: Final = 0.0005
# A daemon or helper that is not ready by then is broken, not slow.
READY_TIMEOUT_S: Final = 30.0
# Time a process gets to exit on SIGTERM before it is killed.
STOP_TIMEOUT_S: Final = 5.0
LINE_RECEIVE_BYTES: Final = 64 * 1024


class BenchError(RuntimeError):
    """A process or response did not behave as the benchmark requires."""


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a results table."""

    measure: str
    result: str
    baseline: str
    target: str
    met: bool | None


@dataclass(frozen=True, slots=True)
class Started:
    """A running server and how long it took to answer its first connection."""

    proc: subprocess.Popen[bytes]
    socket_path: Path
    ready_ns: int


# -- figures ------------------------------------------------------------------------------


def ms(ns: float) -> float:
    """Nanoseconds to milliseconds."""
    return ns / 1e6


def percentile(samples: Sequence[int], fraction: float) -> int:
    """Nearest-rank percentile of `samples`."""
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(len(ordered) * fraction)) - 1]


def spread(samples: Sequence[int], digits: int = 3) -> str:
    """min / p50 / p95 / p99 / max of ns samples, in ms."""
    figures = [min(samples), *(percentile(samples, f) for f in (0.5, 0.95, 0.99)), max(samples)]
    return " / ".join(fixed(ms(value), digits) for value in figures)


def fixed(value: float, digits: int) -> str:
    """`value` with `digits` decimals, without the sign of a value that rounds to zero."""
    text = f"{value:.{digits}f}"
    return text.removeprefix("-") if text.strip("-0.") == "" else text


def verdict(met: bool | None) -> str:
    """How a target check reads in the table."""
    return {True: "yes", False: "**no**", None: "-"}[met]


# -- where and what was measured ----------------------------------------------------------


def machine() -> dict[str, str]:
    """CPU model, cores, Python and kernel of this machine."""
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "kernel": f"{platform.system()} {platform.release()}",
    }


# Between the bursts of a real-time spin: well inside the kernel's 5 % of each second.
BURST_REST_S: Final = 0.1


def steal_ticks() -> int:
    """CPU time the hypervisor gave to others (the `steal` column of /proc/stat), in ticks."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()
    return int(fields[8]) if len(fields) > 8 else 0


def machine_stalls(seconds: float, *, burst_s: float | None = None) -> str:
    """What the machine does to a thread that never blocks: the gaps a pure spin loop sees.

    Lateness beyond a millisecond or two on a VM is mostly this (the hypervisor running
    someone else), not the code under test; the figure is measured in the same run. At
    real-time priority, spin in bursts (`burst_s`, a rest between): a spin that never rests
    is throttled by the kernel for 50 ms of each second, which is not the machine's doing.
    """
    stalls: list[int] = []
    steal_before = steal_ticks()
    spun = 0
    while spun < seconds * 1e9:
        last = began = time.monotonic_ns()
        end = began + int(min(burst_s or seconds, seconds - spun / 1e9) * 1e9)
        while (now := time.monotonic_ns()) < end:
            if now - last > 1_000_000:
                stalls.append(now - last)
            last = now
        # Counted to the read that ended the spin: a burst whose end has already passed
        # when it begins still counts, so the loop always ends.
        spun += now - began
        if burst_s is not None:
            time.sleep(BURST_REST_S)
    steal_s = (steal_ticks() - steal_before) / os.sysconf("SC_CLK_TCK")
    cores = os.cpu_count() or 1
    longest_ms = max(stalls, default=0) / 1e6
    bursts = f" in {burst_s:g} s bursts" if burst_s is not None else ""
    return (
        f"Machine stalls, same run: a pure spin loop for {seconds:.0f} s{bursts} (before the "
        f"rounds) was held off more than 1 ms {len(stalls)} times, the longest "
        f"{longest_ms:.1f} ms; hypervisor steal time "
        f"{100 * steal_s / (seconds * cores):.1f} % of the {cores} CPUs."
    )


# The shipped unit's scheduling (systemd/obsd.service: CPUSchedulingPolicy=fifo, priority 1),
# applied before exec as systemd does.
FIFO: Final = ("chrt", "--fifo", "1")
# The simulator's threads run above it.
JUDGE_PRIORITY: Final = 2


def judge_first() -> None:
    """Put the simulator's threads above everything else on the host.

    The simulator stands for OBS, whose CPUs the hogs do not share: at real-time priority
    it answers the daemon's keep-alive probes as promptly under load as on an idle host. (Its
    stamp of a POST's first byte is the kernel's receive time, which no load delays.)
    """
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and thread.native_id is not None:
            os.sched_setscheduler(thread.native_id, os.SCHED_FIFO, os.sched_param(JUDGE_PRIORITY))


def revision() -> str:
    """The commit measured, and whether the code under test had uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "obsd", "obsctl"],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"
    return f"commit {commit}" + (" with uncommitted changes in obsd/ or obsctl/" if dirty else "")


def this_command(script: str, args: Sequence[str] = ()) -> str:
    """How `script` was run, relative to the repository root where possible."""
    interpreter = (
        os.path.relpath(sys.executable, REPO)
        if Path(sys.executable).is_relative_to(REPO)
        else sys.executable
    )
    return " ".join([interpreter, os.path.relpath(script, REPO), *args])


# -- the docs -----------------------------------------------------------------------------


def section_head(
    title: str,
    doc_command: str,
    script: str,
    args: Sequence[str],
    when: datetime,
    rows: list[Row],
    *,
    machine_note: str = "",
    result_label: str = "result",
) -> list[str]:
    """A benchmark section's opening: title, command, date, machine, and the results table."""
    return [
        f"## {title}",
        "",
        f"Command: `{doc_command}` (this run: `{this_command(script, args)}`, from the "
        "repository root).",
        f"Date: {when.isoformat(timespec='seconds')}; obsd {__version__}, {revision()}.",
        "Machine: "
        + ", ".join(f"{key} {value}" for key, value in machine().items())
        + (machine_note or "."),
        "",
        f"| measure | {result_label} | baseline (same run) | target | met |",
        "|---|---|---|---|---|",
        *(
            f"| {r.measure} | {r.result} | {r.baseline} | {r.target} | {verdict(r.met)} |"
            for r in rows
        ),
    ]


def write_section(section: str, start_marker: str, end_marker: str) -> None:
    """Replace one benchmark's section of docs/performance.md, leaving the rest alone."""
    text = DOC_PATH.read_text() if DOC_PATH.exists() else DOC_HEADER
    start, end = text.find(start_marker), text.find(end_marker)
    if start != -1 and end > start:
        text = text[:start] + section + text[end + len(end_marker) :].removeprefix("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOC_PATH.write_text(text)


def print_table(rows: list[Row]) -> None:
    """The results as a plain-text table on stdout."""
    header = Row("measure", "result", "baseline", "target", None)
    cells = [
        (
            r.measure,
            r.result,
            r.baseline,
            r.target,
            "met" if r is header else verdict(r.met).strip("*"),
        )
        for r in [header, *rows]
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(5)]
    for row in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


# -- processes ----------------------------------------------------------------------------


def exit_on_sigterm(signum: int, frame: object) -> NoReturn:
    """SIGTERM handler: unwinds through the `finally` blocks that stop what the run started."""
    raise SystemExit(128 + signum)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM a process we started, then SIGKILL it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def connect_and_greet(path: Path) -> tuple[socket.socket, bytes]:
    """Connect to a server and read its greeting line; return the socket and any extra bytes."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(READY_TIMEOUT_S)
        sock.connect(str(path))
        buffer = b""
        while b"\n" not in buffer:
            data = sock.recv(LINE_RECEIVE_BYTES)
            if not data:
                raise BenchError(f"{path} closed before its greeting")
            buffer += data
    except BaseException:
        sock.close()
        raise
    return sock, buffer.split(b"\n", 1)[1]


@contextlib.contextmanager
def started(
    argv: Sequence[str], socket_path: Path, output: Path, env: dict[str, str] | None = None
) -> Iterator[Started]:
    """Spawn a server (in `env`) and time it until a connection gets its greeting; stop it."""
    with open(output, "wb") as out:
        begin = time.perf_counter_ns()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                sock, _ = connect_and_greet(socket_path)
            except (FileNotFoundError, ConnectionRefusedError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"{argv[0]} did not start:\n{output.read_text()}") from None
                time.sleep(POLL_INTERVAL_S)
                continue
            ready_ns = time.perf_counter_ns() - begin
            sock.close()
            break
        yield Started(proc, socket_path, ready_ns)
    finally:
        stop(proc)


def obsd_started(
    state_dir: Path, launcher: Sequence[str] = ()
) -> contextlib.AbstractContextManager[Started]:
    """Start the real daemon on a state dir, with its socket and output beside it.

    `launcher` is a command that execs the daemon (`nice -n -10`, `chrt -f 1`), as systemd
    applies a unit's scheduling settings before exec.
    """
    sock = state_dir.with_suffix(".sock")
    argv = [*launcher, str(BIN_DIR / "obsd"), "--socket", str(sock), "--state-dir", str(state_dir)]
    return started(argv, sock, state_dir.with_suffix(".out"))


# -- runs ---------------------------------------------------------------------------------


def sleep_until_local(local_ns: int) -> None:
    """Sleep (off the GIL) until the local clock reads `local_ns`."""
    remaining = local_ns - time.time_ns()
    if remaining > 0:
        time.sleep(remaining / NS)


def iso(epoch_ns: int) -> str:
    """An instant as ISO-8601 with offset, as `target` takes it (exact to the microsecond)."""
    seconds, micros = divmod(epoch_ns // 1000, 1_000_000)
    instant = datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=micros)
    return instant.isoformat(timespec="microseconds")


class Daemon:
    """A running obsd that runs go through, and how far its log has been read."""

    def __init__(self, socket_path: Path, timeout_s: float) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s
        self._after_seq = 0

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """One request on a fresh connection; its data, or BenchError if it failed."""
        try:
            with Client(self.socket_path, timeout=self.timeout_s) as client:
                response = client.request(op, **fields)
        except ClientError as exc:
            raise BenchError(f"{op}: {exc}") from None
        if not response.get("success"):
            raise BenchError(f"{op} failed: {response.get('error')}")
        return dict(response.get("data") or {})

    def events_until_done(self, run_id: str) -> dict[str, dict[str, Any]]:
        """The run's events from the log up to its `done`: the first payload of each type."""
        found: dict[str, dict[str, Any]] = {}
        try:
            with Client(self.socket_path, timeout=self.timeout_s) as client:
                client.request("tail", after_seq=self._after_seq, follow=True)
                while True:
                    event = client.read_message()
                    if "seq" not in event:
                        continue  # the caught_up marker
                    self._after_seq = event["seq"]
                    payload = event.get("payload") or {}
                    if payload.get("run_id") != run_id:
                        continue
                    if event["type"] == "calibration":
                        # The last one: each re-check writes one, and the shot used the last.
                        found["calibration"] = payload
                    found.setdefault(event["type"], payload)
                    if event["type"] == "done":
                        return found
        except ClientError as exc:
            raise BenchError(f"run {run_id}: {exc}") from None
