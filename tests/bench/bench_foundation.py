"""Foundation benchmarks of obsd/obsctl against same-run baselines; writes docs/performance.md."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import msgspec
from benchlib import (
    BIN_DIR,
    DOC_PATH,
    LINE_RECEIVE_BYTES,
    REPO,
    BenchError,
    Row,
    connect_and_greet,
    exit_on_sigterm,
    ms,
    obsd_started,
    percentile,
    print_table,
    section_head,
    started,
    stop,
    write_section,
)

from obsd import __version__
from obsd.adapters.eventlog import DEFAULT_SEGMENT_BYTES
from obsd.core.config import Config
from obsd.core.events import (
    Actor,
    ConfigChangedPayload,
    DaemonStartedPayload,
    LogCreatedPayload,
    encode_event,
    make_event,
)
from obsd.core.logformat import segment_name
from obsd.core.token import TokenInfo, fingerprint

DOC_START: Final = "<!-- bench_foundation:start -->"
DOC_END: Final = "<!-- bench_foundation:end -->"
DOC_COMMAND: Final = ".venv/bin/python tests/bench/bench_foundation.py"
ECHO_SERVER: Final = Path(__file__).resolve().with_name("echo_server.py")

# The size of log the targets are stated for (issue 2, point 7).
LOG_EVENTS: Final = 100_000
# One daemon_started in this many events, the rest config_changed: mean ~390 bytes per line.
STARTED_EVERY: Final = 5
# Fixed seed: every run replays exactly the same log.
LOG_SEED: Final = 2
# Spacing of event timestamps; any increasing series will do.
EVENT_SPACING_NS: Final = 1_000_000_000
FIRST_EVENT_NS: Final = 1_750_000_000 * 1_000_000_000

# Enough samples for a stable p99 (20 in the top percent); warm-up fills caches and the JIT-less
# interpreter's specialisations before counting.
ROUND_TRIPS: Final = 2_000
WARMUP_ROUND_TRIPS: Final = 200
# Replays per measurement; the median is reported (one replay is ~0.3-1 s).
TAIL_RUNS: Final = 5
# Start-ups per state; median reported. Each one of the big log replays 100k events.
START_RUNS: Final = 5
# `obsctl status` and its interpreter baselines are run this many times each; median reported.
CLI_RUNS: Final = 20
# Idle time after the greeting before reading VmRSS: lets start-up garbage be collected.
RSS_SETTLE_S: Final = 0.5
# Large reads on the tail connection, so the client costs as little as possible.
TAIL_RECEIVE_BYTES: Final = 1024 * 1024

TARGET_ROUND_TRIP_P50_MS: Final = 0.3
TARGET_REPLAY_EVENTS_S: Final = 200_000
TARGET_START_MS: Final = 1_000
TARGET_CLI_MS: Final = 150
TARGET_RSS_MIB: Final = 40

PING_REQUEST: Final = b'{"id":1,"op":"ping"}\n'
STATUS_REQUEST: Final = b'{"id":2,"op":"status"}\n'
TAIL_REQUEST: Final = b'{"id":1,"op":"tail","after_seq":0}\n'
CAUGHT_UP_MARK: Final = b'"caught_up"'
BASELINE_RSS_CODE: Final = (
    "import anyio, msgspec\n"
    "async def idle() -> None:\n"
    "    print('ready', flush=True)\n"
    "    await anyio.sleep_forever()\n"
    "anyio.run(idle)\n"
)


@dataclass(frozen=True, slots=True)
class LogInfo:
    """What the generated log looks like."""

    events: int
    total_bytes: int
    segments: int


# -- helpers ------------------------------------------------------------------------------


def vm_status_kib(pid: int, field: str) -> int:
    """A `VmRSS`-style field of /proc/PID/status, in KiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise BenchError(f"no {field} in /proc/{pid}/status")


# -- the event log ------------------------------------------------------------------------


def realistic_payload(rng: random.Random, seq: int) -> DaemonStartedPayload | ConfigChangedPayload:
    """A payload like the ones a daemon in use writes: restarts and configuration changes."""
    if seq % STARTED_EVERY == 0:
        return DaemonStartedPayload(
            server=__version__, pid=rng.randrange(300, 4_000_000), replayed_events=seq - 1
        )
    crns = [f"{rng.randrange(10_000, 100_000)}" for _ in range(rng.randint(1, 6))]
    split = rng.randint(1, len(crns))
    token = None
    changed = ["ecrn", "scrn", "target"]
    if rng.random() < 0.1:
        changed.append("token")
        token = TokenInfo(
            fingerprint=fingerprint(str(seq)),
            exp="2026-02-01T09:00:00Z",
            iat="2026-01-31T09:00:00Z",
        )
    config = Config(
        ecrn=tuple(crns[:split]),
        scrn=tuple(crns[split:]),
        target=f"2026-02-{rng.randint(1, 28):02d}T10:00:00+03:00",
        retry_interval=rng.choice((3.5, 4.0, 5.0)),
    )
    return ConfigChangedPayload(
        actor=Actor(uid=1000, pid=rng.randrange(300, 4_000_000)),
        changed=changed,
        config=config,
        token=token if token is not None else msgspec.UNSET,
    )


def build_log(log_dir: Path, events: int) -> LogInfo:
    """Write `events` valid events as segment files, rotating where the daemon would."""
    log_dir.mkdir(parents=True)
    rng = random.Random(LOG_SEED)
    segments: list[tuple[int, list[bytes]]] = []
    size = DEFAULT_SEGMENT_BYTES  # Forces the first segment to open.
    total = 0
    for seq in range(1, events + 1):
        payload = (
            LogCreatedPayload(log_id="bench-0000-4000-8000-log000000001", server=__version__)
            if seq == 1
            else realistic_payload(rng, seq)
        )
        line = encode_event(make_event(payload, seq, FIRST_EVENT_NS + seq * EVENT_SPACING_NS))
        # Like EventLog.append: rotate before a write once the segment has reached the limit.
        if size >= DEFAULT_SEGMENT_BYTES:
            segments.append((seq, []))
            size = 0
        segments[-1][1].append(line)
        size += len(line)
        total += len(line)
    for first_seq, lines in segments:
        (log_dir / segment_name(first_seq)).write_bytes(b"".join(lines))
    return LogInfo(events=events, total_bytes=total, segments=len(segments))


def evict_from_page_cache(directory: Path) -> None:
    """Flush and drop the files of `directory` from the page cache (no root needed)."""
    for path in directory.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


# -- processes ----------------------------------------------------------------------------


def wall_ns(argv: Sequence[str]) -> int:
    """Wall time of one run of a command that must succeed."""
    begin = time.perf_counter_ns()
    done = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = time.perf_counter_ns() - begin
    if done.returncode != 0:
        raise BenchError(f"{argv} failed ({done.returncode}): {done.stderr.decode()}")
    return elapsed


def median_wall_ms(argv: Sequence[str]) -> float:
    """Median wall time of CLI_RUNS runs, after one untimed run."""
    wall_ns(argv)
    return ms(statistics.median(wall_ns(argv) for _ in range(CLI_RUNS)))


# -- measurements -------------------------------------------------------------------------


def round_trips(path: Path, request: bytes) -> list[int]:
    """Round-trip times of `request` on one connection, after a warm-up."""
    sock, pending = connect_and_greet(path)
    with sock:
        if pending:
            raise BenchError("unexpected bytes after the greeting")
        recv, send, clock = sock.recv, sock.sendall, time.perf_counter_ns
        first = b""
        samples: list[int] = []
        for index in range(WARMUP_ROUND_TRIPS + ROUND_TRIPS):
            begin = clock()
            send(request)
            response = recv(LINE_RECEIVE_BYTES)
            while not response.endswith(b"\n"):
                response += recv(LINE_RECEIVE_BYTES)
            end = clock()
            if index >= WARMUP_ROUND_TRIPS:
                samples.append(end - begin)
            first = first or response
    if b'"success":false' in first or first.count(b"\n") != 1:
        raise BenchError(f"bad response to {request!r}: {first[:200]!r}")
    return samples


def tail_replay(path: Path, expected_events: int) -> tuple[int, int]:
    """Replay the whole log through `tail`; return (events received, ns until caught_up)."""
    sock, pending = connect_and_greet(path)
    with sock:
        recv = sock.recv
        lines = pending.count(b"\n")
        partial = b""
        begin = time.perf_counter_ns()
        sock.sendall(TAIL_REQUEST)
        while True:
            data = recv(TAIL_RECEIVE_BYTES)
            if not data:
                raise BenchError("the daemon closed the tail connection")
            last_newline = data.rfind(b"\n")
            if last_newline == -1:
                partial += data
                continue
            lines += data.count(b"\n")
            line_start = data.rfind(b"\n", 0, last_newline) + 1
            last_line = (
                partial + data[:last_newline] if line_start == 0 else data[line_start:last_newline]
            )
            partial = data[last_newline + 1 :]
            if (
                CAUGHT_UP_MARK in last_line
                and msgspec.json.decode(last_line).get("type") == "caught_up"
            ):
                break
        elapsed = time.perf_counter_ns() - begin
    events = lines - 2  # The response to `tail` and the caught_up marker are not events.
    if events != expected_events:
        raise BenchError(f"tail delivered {events} events, expected {expected_events}")
    return events, elapsed


def raw_read(log_dir: Path) -> tuple[int, int]:
    """Read every segment from disk and count its lines, as the tail client does; (lines, ns)."""
    begin = time.perf_counter_ns()
    lines = 0
    for path in sorted(log_dir.iterdir()):
        lines += path.read_bytes().count(b"\n")
    return lines, time.perf_counter_ns() - begin


def median_rate(runs: Callable[[], tuple[int, int]]) -> float:
    """Median items per second over TAIL_RUNS runs of `runs`, after one untimed run."""
    runs()
    rates = []
    for _ in range(TAIL_RUNS):
        count, elapsed = runs()
        rates.append(count / (elapsed / 1e9))
    return statistics.median(rates)


@dataclass(frozen=True, slots=True)
class StartFigures:
    """Medians over START_RUNS start-ups of one kind of state dir."""

    ready_ms: float
    rss_mib: float
    hwm_mib: float


def start_figures(work: Path, label: str, prepare: Callable[[Path], None]) -> StartFigures:
    """Start the daemon START_RUNS times on fresh state dirs made by `prepare`."""
    ready: list[float] = []
    rss: list[float] = []
    hwm: list[float] = []
    for run in range(START_RUNS):
        state_dir = work / f"{label}-{run}"
        prepare(state_dir)
        with obsd_started(state_dir) as daemon:
            time.sleep(RSS_SETTLE_S)
            ready.append(ms(daemon.ready_ns))
            rss.append(vm_status_kib(daemon.proc.pid, "VmRSS") / 1024)
            hwm.append(vm_status_kib(daemon.proc.pid, "VmHWM") / 1024)
        shutil.rmtree(state_dir)
    return StartFigures(statistics.median(ready), statistics.median(rss), statistics.median(hwm))


def baseline_rss_mib(work: Path) -> float:
    """VmRSS of a bare interpreter that imported anyio and msgspec and sleeps in anyio.run."""
    output = work / "baseline-rss.out"
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", BASELINE_RSS_CODE],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=out,
        )
    with proc:
        try:
            if proc.stdout is None or proc.stdout.readline() != b"ready\n":
                raise BenchError(f"baseline process failed: {output.read_text()}")
            time.sleep(RSS_SETTLE_S)
            return vm_status_kib(proc.pid, "VmRSS") / 1024
        finally:
            stop(proc)


# -- the run ------------------------------------------------------------------------------


def run_all(work: Path, notes: list[str]) -> list[Row]:
    """Run the five measurements; return the table rows, adding remarks to `notes`."""
    pristine = work / "pristine-log"
    begin = time.perf_counter_ns()
    info = build_log(pristine, LOG_EVENTS)
    notes.append(
        f"Log: {info.events:,} events ({info.total_bytes / 1e6:.1f} MB, "
        f"{info.total_bytes / info.events:.0f} bytes/event on average: config_changed and one "
        f"daemon_started in {STARTED_EVERY}), written with obsd.core.events in "
        f"{ms(time.perf_counter_ns() - begin):.0f} ms as {info.segments} segment file(s), "
        f"rotated at the daemon's default {DEFAULT_SEGMENT_BYTES // 2**20} MiB."
    )
    evict_from_page_cache(pristine)
    _, cold_read_ns = raw_read(pristine)
    notes.append(
        f"Reading the whole log after evicting it from the page cache takes "
        f"{ms(cold_read_ns):.0f} ms on this machine's disk, which bounds what the evicted "
        "start-up case can add."
    )

    def with_log(state_dir: Path) -> None:
        shutil.copytree(pristine, state_dir / "log")

    def with_cold_log(state_dir: Path) -> None:
        with_log(state_dir)
        evict_from_page_cache(state_dir / "log")

    print("start-up ...", flush=True)
    empty = start_figures(work, "empty", lambda state_dir: state_dir.mkdir())
    full = start_figures(work, "full", with_log)
    cold = start_figures(work, "cold", with_cold_log)
    rss_floor = baseline_rss_mib(work)

    main_dir = work / "main"
    with_log(main_dir)
    echo_sock = work / "echo.sock"
    echo_argv = [sys.executable, str(ECHO_SERVER), str(echo_sock)]
    with obsd_started(main_dir) as daemon, started(echo_argv, echo_sock, work / "echo.out"):
        print("round trips ...", flush=True)
        echo = round_trips(echo_sock, PING_REQUEST)
        ping = round_trips(daemon.socket_path, PING_REQUEST)
        status = round_trips(daemon.socket_path, STATUS_REQUEST)
        print("tail replay ...", flush=True)
        head = LOG_EVENTS + 1  # The daemon appended daemon_started on start.
        replay = median_rate(lambda: tail_replay(daemon.socket_path, head))
        ceiling = median_rate(lambda: raw_read(main_dir / "log"))
        print("obsctl status ...", flush=True)
        cli = median_wall_ms(
            [str(BIN_DIR / "obsctl"), "--socket", str(daemon.socket_path), "status"]
        )
        bare = median_wall_ms([sys.executable, "-c", "pass"])
        imported = median_wall_ms([sys.executable, "-c", "import obsctl.cli"])
        after_load = vm_status_kib(daemon.proc.pid, "VmRSS") / 1024
    notes.append(
        f"RSS of the 100k-event daemon after all the above (round trips, {TAIL_RUNS + 1} full "
        f"replays, {CLI_RUNS + 1} obsctl runs): {after_load:.1f} MiB. Peak (VmHWM) during "
        f"start-up: {full.hwm_mib:.1f} MiB with 100k events, {empty.hwm_mib:.1f} MiB empty."
    )

    def trip_row(name: str, samples: list[int]) -> Row:
        p50 = ms(percentile(samples, 0.5))
        return Row(
            f"round trip `{name}` p50 / p99",
            f"{p50:.3f} / {ms(percentile(samples, 0.99)):.3f} ms",
            f"echo server: {ms(percentile(echo, 0.5)):.3f} / {ms(percentile(echo, 0.99)):.3f} ms",
            f"p50 < {TARGET_ROUND_TRIP_P50_MS} ms",
            p50 < TARGET_ROUND_TRIP_P50_MS,
        )

    def start_row(name: str, figures: StartFigures) -> Row:
        return Row(
            f"start-up to greeting, {name}",
            f"{figures.ready_ms:.0f} ms",
            f"empty state dir: {empty.ready_ms:.0f} ms",
            f"< {TARGET_START_MS} ms",
            figures.ready_ms < TARGET_START_MS,
        )

    def rss_row(name: str, figures: StartFigures) -> Row:
        return Row(
            f"idle daemon RSS, {name}",
            f"{figures.rss_mib:.1f} MiB",
            f"bare anyio + msgspec process: {rss_floor:.1f} MiB",
            f"< {TARGET_RSS_MIB} MiB",
            figures.rss_mib < TARGET_RSS_MIB,
        )

    return [
        trip_row("ping", ping),
        trip_row("status", status),
        Row(
            "tail replay of 100k events to a client",
            f"{replay:,.0f} events/s",
            f"raw read of the segments in the client: {ceiling:,.0f} lines/s",
            f">= {TARGET_REPLAY_EVENTS_S:,} events/s",
            replay >= TARGET_REPLAY_EVENTS_S,
        ),
        start_row("100k events", full),
        start_row("100k events, log evicted from page cache", cold),
        Row(
            "`obsctl status` wall time",
            f"{cli:.0f} ms",
            f'`python -c pass`: {bare:.0f} ms; `python -c "import obsctl.cli"`: {imported:.0f} ms',
            f"< {TARGET_CLI_MS} ms",
            cli < TARGET_CLI_MS,
        ),
        rss_row("100k events", full),
        rss_row("empty state dir", empty),
    ]


def render(rows: list[Row], notes: list[str], when: datetime) -> str:
    """The markdown section for docs/performance.md."""
    out = [
        DOC_START,
        *section_head(
            "Foundation: control socket, tail replay, start-up, obsctl, memory",
            DOC_COMMAND,
            __file__,
            (),
            when,
            rows,
        ),
        "",
        "Method:",
        f"- Round trips: {ROUND_TRIPS:,} requests after {WARMUP_ROUND_TRIPS} warm-up on one "
        "connection from a blocking socket client in the benchmark process, timed with "
        "`perf_counter_ns` from before `send` to the whole response line; the echo server "
        "(tests/bench/echo_server.py) is anyio and newline framed like obsd, so it is the floor.",
        f"- Tail: `{TAIL_REQUEST.decode().strip()}` on a fresh connection, timed until the "
        f"caught_up line; median of {TAIL_RUNS} replays after one warm-up. The ceiling reads the "
        "same segment files (page cache warm) and counts their lines in the client, as the "
        "tail client does.",
        f"- Start-up: from spawning `obsd` until a connection receives the greeting, median of "
        f"{START_RUNS} starts, each on a fresh copy of the state dir. Unless stated, the log is in "
        "the page cache (as after a restart); the evicted case drops it with "
        "`posix_fadvise(DONTNEED)` first.",
        f"- `obsctl status` and its baselines: median wall time of {CLI_RUNS} runs each (one "
        "untimed run first), spawned with `subprocess.run`, output discarded.",
        f"- RSS: VmRSS from /proc/PID/status {RSS_SETTLE_S} s after the greeting, median over "
        "the start-ups above; the baseline runs `import anyio, msgspec` and idles in "
        "`anyio.run`.",
        *(f"- {note}" for note in notes),
        DOC_END,
    ]
    return "\n".join(out) + "\n"


def main() -> int:
    """Run everything, print the table and (unless --no-docs) update docs/performance.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--no-docs",
        action="store_true",
        help="print the table only; leave docs/performance.md alone",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    when = datetime.now(UTC)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="obsd-bench-") as work:
        rows = run_all(Path(work), notes)
    print()
    print_table(rows)
    for note in notes:
        print(f"note: {note}")
    if not args.no_docs:
        write_section(render(rows, notes, when), DOC_START, DOC_END)
        print(f"wrote {DOC_PATH.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
