"""What a run scheduled a week ahead costs while it waits: log bytes a day, CPU an hour, RSS.

Two measures, as issue 15 asks. A compressed week: the real run driver (RunDriver) waits a
week on a fake clock (tests/fake_clock.py: every wait jumps), against a scripted OBS and NTP,
so every wake-up, re-check and event of the week happens in seconds; its log is the week's,
and its CPU is the week's work. A real hour: the real daemon waits for a target a week ahead,
against the simulator, and its CPU time, RSS and log are read from /proc and the state dir.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import anyio
from benchlib import (
    REPO,
    Daemon,
    Row,
    iso,
    obsd_started,
    print_table,
    section_head,
    write_section,
)

sys.path.insert(0, str(REPO))
from obsd.core.timing import NS
from obsd.sim import Course, SimConfig, Simulator, Student
from tests.daemon.scripted import obs_answer, planned

DOC_START: Final = "<!-- bench_wait:start -->"
DOC_END: Final = "<!-- bench_wait:end -->"
DOC_COMMAND: Final = ".venv/bin/python tests/bench/bench_wait.py"
WEEK_S: Final = 7 * 86_400.0
DAY_S: Final = 86_400.0
# The real measure: one hour (issue 15), sampled this often.
REAL_S: Final = 3600.0
SAMPLE_EVERY_S: Final = 300.0
# Before the first sample: start-up and the run's calibration are over.
SETTLE_S: Final = 60.0
STUDENT: Final = "150200001"

TARGET_LOG_KIB_PER_DAY: Final = 100.0
TARGET_CPU_S_PER_HOUR: Final = 1.0


async def compressed_week() -> tuple[dict[str, tuple[int, int]], float, float, list[int]]:
    """Event counts and bytes by type, CPU seconds, the days the log covers, and this
    process's RSS (KiB) at the start and at the end of each simulated day."""
    directory = Path(tempfile.mkdtemp(prefix="obsd-week-"))
    began = time.process_time()
    drive = await planned(directory, [obs_answer({"21234": "successResult"})], wait_s=WEEK_S)
    rss = [proc_rss_kib(os.getpid())]
    for day in range(1, round(WEEK_S / DAY_S) + 1):
        drive.clock.when(
            drive.clock.mono_ns() + int(day * DAY_S * NS),
            lambda: rss.append(proc_rss_kib(os.getpid())),
        )
    run = await drive.to_the_end()
    cpu = time.process_time() - began
    if run.phase != "done":
        raise RuntimeError(f"the week's run ended {run.phase}: {run.reason}")
    found: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for segment in sorted(directory.glob("*.jsonl")):
        for line in segment.read_bytes().splitlines():
            entry = found[json.loads(line)["type"]]
            entry[0] += 1
            entry[1] += len(line) + 1
    return {k: (v[0], v[1]) for k, v in found.items()}, cpu, WEEK_S / DAY_S, rss


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_kib(pid: int) -> int:
    """VmRSS of a process, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def log_bytes(state_dir: Path) -> int:
    """The size of the event log's segments."""
    return sum(p.stat().st_size for p in (state_dir / "log").glob("*.jsonl"))


def real_hour(seconds: float) -> list[tuple[float, float, int, int]]:
    """(elapsed s, CPU s, RSS KiB, log bytes) samples of a daemon waiting a week ahead."""
    samples: list[tuple[float, float, int, int]] = []
    config = SimConfig(
        clock_offset_s=0.0,
        courses=[Course(crn="21234", quota=40)],
        students=[Student(subject=STUDENT)],
    )
    with tempfile.TemporaryDirectory(prefix="obsd-wait-") as work:
        state_dir = Path(work) / "state"
        with Simulator(config).serve_in_thread() as sim, obsd_started(state_dir) as started:
            daemon = Daemon(started.socket_path, 30.0)
            target_ns = time.time_ns() + int(WEEK_S * NS)
            daemon.request(
                "configure",
                config={
                    "ecrn": ["21234"],
                    "target": iso(target_ns),
                    "obs_base_url": sim.base_url,
                    "ntp_servers": sim.ntp_servers,
                    "token": sim.token(STUDENT, lifetime_s=int(WEEK_S + DAY_S)),
                },
            )
            daemon.request("start")
            time.sleep(SETTLE_S)
            pid = started.proc.pid
            first = time.monotonic()
            while True:
                elapsed = time.monotonic() - first
                samples.append((elapsed, proc_cpu_s(pid), proc_rss_kib(pid), log_bytes(state_dir)))
                if elapsed >= seconds:
                    break
                time.sleep(min(SAMPLE_EVERY_S, seconds - elapsed))
            status = daemon.request("status")
            if status["phase"] != "waiting":
                raise RuntimeError(f"the run is {status['phase']}, not waiting")
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--real-s", type=float, default=REAL_S, help="the real wait, seconds")
    parser.add_argument("--no-docs", action="store_true", help="print only")
    args = parser.parse_args()
    when = datetime.now(UTC)
    counts, week_cpu_s, days, week_rss = anyio.run(compressed_week)
    week_bytes = sum(b for _, b in counts.values())
    per_day_kib = week_bytes / days / 1024
    samples = real_hour(args.real_s)
    (t0, cpu0, rss0, log0), (t1, cpu1, rss1, log1) = samples[0], samples[-1]
    hours = (t1 - t0) / 3600
    cpu_per_hour = (cpu1 - cpu0) / hours if hours else 0.0
    log_per_day_kib = (log1 - log0) / hours * 24 / 1024 if hours else 0.0
    rss_values = [s[2] for s in samples]
    rows = [
        Row(
            "log a day, a run waiting a week (compressed week)",
            f"{per_day_kib:.1f} KiB",
            "-",
            f"< {TARGET_LOG_KIB_PER_DAY:g} KiB",
            per_day_kib < TARGET_LOG_KIB_PER_DAY,
        ),
        Row(
            "CPU an hour, the week's work (compressed week)",
            f"{week_cpu_s / (WEEK_S / 3600):.4f} s",
            "-",
            f"< {TARGET_CPU_S_PER_HOUR:g} s",
            week_cpu_s / (WEEK_S / 3600) < TARGET_CPU_S_PER_HOUR,
        ),
        Row(
            f"CPU an hour, the real daemon ({hours * 60:.0f} min)",
            f"{cpu_per_hour:.3f} s",
            "-",
            f"< {TARGET_CPU_S_PER_HOUR:g} s",
            cpu_per_hour < TARGET_CPU_S_PER_HOUR,
        ),
        Row(
            "log a day, the real daemon, extrapolated",
            f"{log_per_day_kib:.1f} KiB",
            "-",
            f"< {TARGET_LOG_KIB_PER_DAY:g} KiB",
            log_per_day_kib < TARGET_LOG_KIB_PER_DAY,
        ),
        Row(
            "RSS, first / last / max sample",
            f"{rss0 / 1024:.1f} / {rss1 / 1024:.1f} / {max(rss_values) / 1024:.1f} MiB",
            "-",
            "flat",
            rss1 - rss0 < 1024,
        ),
        Row(
            "RSS of the process running the compressed week, day 1 / day 7 / max",
            f"{week_rss[1] / 1024:.1f} / {week_rss[-1] / 1024:.1f} / "
            f"{max(week_rss) / 1024:.1f} MiB",
            f"before the week: {week_rss[0] / 1024:.1f} MiB",
            "flat",
            week_rss[-1] - week_rss[1] < 1024,
        ),
    ]
    print_table(rows)
    by_type = [
        f"| {kind} | {count} | {size / days / 1024:.1f} |"
        for kind, (count, size) in sorted(counts.items(), key=lambda item: -item[1][1])
    ]
    for line in by_type:
        print(line)
    if args.no_docs or args.real_s < REAL_S:
        return 0
    section = [
        DOC_START,
        *section_head(
            "Waiting a week: log, CPU and memory while a run waits",
            DOC_COMMAND,
            __file__,
            sys.argv[1:],
            when,
            rows,
        ),
        "",
        "The compressed week's log by event type:",
        "",
        "| event | count | KiB a day |",
        "|---|---|---|",
        *by_type,
        "",
        "Method:",
        "- Compressed week: `RunDriver` on a real journal (a temporary directory), waiting 7 days "
        "for its target on the fake clock of the in-process tests (every wait jumps; scripted "
        "NTP servers and OBS, tests/daemon/scripted.py), then firing once. The log is all the "
        "week wrote, the last hour's dense countdown and re-checks included; CPU is this "
        "process's time for the whole week, divided by its 168 hours. Its VmRSS was read "
        "before the week and as each simulated day ended: "
        + ", ".join(f"{r / 1024:.1f}" for r in week_rss)
        + " MiB.",
        f"- Real: the daemon (`obsd`) against an `obsd.sim.Simulator` in this process, a run "
        f"started with its target 7 days ahead; after {SETTLE_S:.0f} s (start-up and the "
        f"run's calibration), user + system CPU (/proc/PID/stat), VmRSS and the log's size were "
        f"read every {SAMPLE_EVERY_S / 60:.0f} min for {hours * 60:.0f} min. Samples (min, CPU s, "
        "RSS MiB, log KiB): "
        + "; ".join(
            f"{t / 60:.0f}, {c:.2f}, {r / 1024:.1f}, {b / 1024:.1f}" for t, c, r, b in samples
        )
        + ".",
        DOC_END,
        "",
    ]
    write_section("\n".join(section), DOC_START, DOC_END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
