"""Time sources: calibration wall time with four NTP servers (one silent), and NTP queries per
server per run, against the simulator's scripted servers and its NTP query log."""

from __future__ import annotations

import argparse
import itertools
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from benchlib import (
    DOC_PATH,
    REPO,
    BenchError,
    Daemon,
    Row,
    exit_on_sigterm,
    ms,
    obsd_started,
    percentile,
    print_table,
    section_head,
    write_section,
)

from obsd.adapters.ntp_client import NTP_TIMEOUT_S
from obsd.core.time_sources import MIN_QUERY_INTERVAL_NS
from obsd.core.timing import NS
from obsd.core.waiting import RECHECK_NTP_BEFORE_S
from obsd.sim import Course, NtpBehaviour, RunningSimulator, SimConfig, Simulator, Student

DOC_START: Final = "<!-- bench_time:start -->"
DOC_END: Final = "<!-- bench_time:end -->"
DOC_COMMAND: Final = ".venv/bin/python tests/bench/bench_time.py"
DEFAULT_CALIBRATIONS: Final = 20
# Calibrations are spaced past the politeness interval, so that each one asks every server.
SPACING_S: Final = MIN_QUERY_INTERVAL_NS / NS + 0.1
# A run whose opening is this far ahead (less the configure and a politeness pause) has both
# re-checks before the shot after its calibration, as a real one.
RUN_LEAD_S: Final = 15.0
RUN_TIMEOUT_S: Final = 40.0
STUDENT: Final = "150200001"
CRN: Final = "21234"
HONEST: Final = NtpBehaviour()
SILENT: Final = NtpBehaviour(kind="silent")
# The silent server costs its timeout; the rest of a calibration is a few ms on loopback.
TARGET_CALIBRATION_S: Final = NTP_TIMEOUT_S + 0.5
# Calibration plus the two re-checks before the shot: three queries per server.
TARGET_QUERIES: Final = 1 + len(RECHECK_NTP_BEFORE_S)
# 0.1 sent four back-to-back queries per server at calibration and at each re-check.
OLD_QUERIES_PER_ROUND: Final = 4


def request(socket_path: Path, op: str, **fields: Any) -> dict[str, Any]:
    """One request on a fresh connection; its data, or BenchError."""
    return Daemon(socket_path, RUN_TIMEOUT_S).request(op, **fields)


def sim_config(ntp: list[NtpBehaviour], opening_in_s: float) -> SimConfig:
    return SimConfig(
        opening_at=time.time() + opening_in_s,
        courses=[Course(crn=CRN, quota=40)],
        students=[Student(subject=STUDENT)],
        ntp=ntp,
        # Answers at once: the figures are of the send, and runs stay short.
        crn_processing_s=(0.0, 0.0),
    )


def iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="microseconds")


def point_at(socket_path: Path, sim: RunningSimulator, opening_at: float) -> None:
    """Configure the daemon for this simulator, aimed at its opening."""
    request(
        socket_path,
        "configure",
        config={
            "obs_base_url": sim.base_url,
            "ntp_servers": sim.ntp_servers,
            "target": iso(opening_at),
            "token": sim.token(STUDENT),
            "ecrn": [CRN],
        },
    )


def calibration_times(socket_path: Path, ntp: list[NtpBehaviour], count: int) -> list[int]:
    """Wall time (ns) of `count` calibrate ops against servers behaving as `ntp`."""
    config = sim_config(ntp, 3600.0)
    assert config.opening_at is not None
    with Simulator(config).serve_in_thread() as sim:
        point_at(socket_path, sim, config.opening_at)
        times = []
        for _ in range(count):
            begin = time.perf_counter_ns()
            data = request(socket_path, "calibrate")
            times.append(time.perf_counter_ns() - begin)
            if data["time_status"] != "agreed":
                raise BenchError(f"calibration did not agree: {data}")
            time.sleep(SPACING_S)
    return times


def queries_per_server(socket_path: Path) -> tuple[list[int], float]:
    """One whole run against four servers (one silent): queries each server got, run seconds."""
    ntp = [HONEST, HONEST, HONEST, SILENT]
    config = sim_config(ntp, RUN_LEAD_S)
    assert config.opening_at is not None
    with Simulator(config).serve_in_thread() as sim:
        point_at(socket_path, sim, config.opening_at)
        # Far enough from the calibrations above: every server is due again.
        time.sleep(SPACING_S)
        begin = time.monotonic()
        request(socket_path, "start")
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while request(socket_path, "status")["phase"] != "idle":
            if time.monotonic() > deadline:
                raise BenchError("the run did not end")
            time.sleep(0.5)
        seconds = time.monotonic() - begin
        arrivals = sim.ntp_queries()
        posts = [r for r in sim.requests() if r.method == "POST"]
    if not posts or posts[0].arrival_ns < round(config.opening_at * NS):
        raise BenchError("the run sent no POST, or one before the opening")
    counts = [sum(1 for a in arrivals if a.server == i) for i in range(len(ntp))]
    for server in range(len(ntp)):
        times = [a.true_ns for a in arrivals if a.server == server]
        if any(b - a < MIN_QUERY_INTERVAL_NS - 1_000_000 for a, b in itertools.pairwise(times)):
            raise BenchError(f"server {server} was asked twice within 2 s")
    return counts, seconds


def spread(samples: Sequence[int]) -> str:
    return (
        f"{ms(min(samples)):.1f} / {ms(statistics.median(samples)):.1f} / "
        f"{ms(percentile(samples, 0.95)):.1f} / {ms(max(samples)):.1f} ms"
    )


def main() -> int:
    """Measure, print the table and (unless --no-docs) update docs/performance.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calibrations", type=int, default=DEFAULT_CALIBRATIONS)
    parser.add_argument("--no-docs", action="store_true", help="print only")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    when = datetime.now(UTC)
    with (
        tempfile.TemporaryDirectory(prefix="obsd-bench-time-") as work,
        obsd_started(Path(work) / "state") as daemon,
    ):
        if True:
            silent = calibration_times(
                daemon.socket_path, [HONEST] * 3 + [SILENT], args.calibrations
            )
            honest = calibration_times(daemon.socket_path, [HONEST] * 4, args.calibrations)
            counts, run_s = queries_per_server(daemon.socket_path)
    median_silent = statistics.median(silent) / NS
    polite_ceiling = int(run_s // (MIN_QUERY_INTERVAL_NS / NS)) + 1
    rows = [
        Row(
            "calibrate, 4 servers (1 silent), min / p50 / p95 / max",
            spread(silent),
            f"4 answering: {spread(honest)}",
            f"p50 < {TARGET_CALIBRATION_S:g} s",
            median_silent < TARGET_CALIBRATION_S,
        ),
        Row(
            f"NTP queries per server in one run ({run_s:.0f} s, 3 honest + 1 silent)",
            " / ".join(str(c) for c in counts),
            f"politeness ceiling {polite_ceiling}; 0.1 sent "
            f"{OLD_QUERIES_PER_ROUND * TARGET_QUERIES} (4 per round)",
            f"= {TARGET_QUERIES} (calibration + {len(RECHECK_NTP_BEFORE_S)} re-checks)",
            all(c == TARGET_QUERIES for c in counts),
        ),
    ]
    print_table(rows)
    if args.no_docs:
        return 0
    if args.calibrations < DEFAULT_CALIBRATIONS:
        print(f"fewer than {DEFAULT_CALIBRATIONS} calibrations: docs/performance.md left alone")
        return 0
    section = [
        DOC_START,
        *section_head(
            "Time sources: calibration time and NTP politeness",
            DOC_COMMAND,
            __file__,
            sys.argv[1:],
            when,
            rows,
        ),
        "",
        "Method:",
        f"- One daemon; `calibrate` {args.calibrations} times against a simulator with three "
        f"honest NTP servers and one silent one, {SPACING_S:g} s apart (past the politeness "
        "interval, so every calibration asks every server), timed at the client; then the same "
        "against four honest servers. All servers are asked at once, so the silent one costs "
        f"its {NTP_TIMEOUT_S:g} s timeout once, not per sample.",
        f"- One whole run with its opening {RUN_LEAD_S:g} s ahead, so that both re-checks "
        f"before the shot ({', '.join(f'{s:g} s' for s in RECHECK_NTP_BEFORE_S)} before) "
        "happen; the simulator's NTP query log counts what each server received (the silent "
        "one included), and checks that no server was asked twice within 2 s. The ceiling is "
        "what the politeness rule would allow over the run; 0.1's figure is from its code "
        "(four back-to-back queries per server per round).",
        DOC_END,
    ]
    write_section("\n".join(section) + "\n", DOC_START, DOC_END)
    print(f"wrote {DOC_PATH.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
