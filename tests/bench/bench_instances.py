"""Several students on one VPS: 4 obsd instances firing at the same instant, each judged by the
simulator's arrival log, against one instance firing alone in the same run."""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from benchlib import (
    BIN_DIR,
    DOC_PATH,
    REPO,
    BenchError,
    Daemon,
    Row,
    exit_on_sigterm,
    iso,
    machine_stalls,
    ms,
    percentile,
    print_table,
    section_head,
    sleep_until_local,
    started,
    write_section,
)

from obsd.core.config import Config
from obsd.core.timing import MS, NS
from obsd.sim import Course, NtpBehaviour, RunningSimulator, SimConfig, Simulator, Student

DOC_START: Final = "<!-- bench_instances:start -->"
DOC_END: Final = "<!-- bench_instances:end -->"
DOC_COMMAND: Final = ".venv/bin/python tests/bench/bench_instances.py"

# Issue 11: four students sharing a 2-core VPS, all firing at the same instant.
INSTANCES: Final = ("alice", "bob", "carol", "dave")
STUDENTS: Final = {name: f"1502000{n:02d}" for n, name in enumerate(INSTANCES, 1)}
# Each round: one instance alone (the baseline), then all four together.
DEFAULT_ROUNDS: Final = 30
# Long enough to catch the machine's multi-ms stalls.
STALL_PROBE_S: Final = 20.0
# Fixed seed: every invocation draws the same clock offsets, in the same order.
OFFSET_SEED: Final = 11
MAX_OFFSET_S: Final = 5.0
# As bench_fire: calibration, the NTP re-check and the quiet final approach all happen. Four
# daemons calibrate at once here, so the lead is a little longer.
LEAD_S: Final = 3.0
# Read results this long after the shot, the benchmark asleep until then.
SETTLE_S: Final = 0.2
RUN_TIMEOUT_S: Final = 30.0
# The simulator opens this long after the target (float rounding; never more lenient).
OPENING_GUARD_NS: Final = 1_000
NTP_SERVERS: Final = 4
CRN: Final = "21234"
QUOTA: Final = 40
TARGET_EARLY: Final = 0


@dataclass(frozen=True, slots=True)
class Shot:
    """One instance's first POST in one round, as the simulator judged it."""

    round: int
    instance: str
    together: bool
    fire_ns: int  # target + safety buffer: where the shot should land
    opening_ns: int
    arrival_ns: int
    margin_ns: int  # the time estimate's error bound at the shot, added to the fire instant

    @property
    def lateness_ns(self) -> int:
        """Arrival - (target + safety buffer)."""
        return self.arrival_ns - self.fire_ns

    @property
    def early(self) -> bool:
        """Before the opening itself."""
        return self.arrival_ns < self.opening_ns


@dataclass(frozen=True, slots=True)
class Opening:
    """A simulator for every student, opening soon."""

    sim: RunningSimulator
    offset_ns: int
    target_ns: int
    opening_ns: int


@contextmanager
def opening(offset_s: float, seed: int) -> Iterator[Opening]:
    """A fresh simulated OBS `offset_s` off our clock, opening LEAD_S from now (true time)."""
    offset_ns = round(offset_s * NS)
    # The daemons refuse a target that has passed by the LOCAL clock: stretch the lead then.
    lead_ns = round((LEAD_S + max(0.0, -offset_s)) * NS)
    target_ns = (time.time_ns() + offset_ns + lead_ns) // 1000 * 1000
    config = SimConfig(
        opening_at=(target_ns + OPENING_GUARD_NS) / NS,
        clock_offset_s=offset_s,
        courses=[Course(crn=CRN, quota=QUOTA)],
        students=[Student(subject=subject) for subject in STUDENTS.values()],
        ntp=[NtpBehaviour()] * NTP_SERVERS,
        seed=seed,
        # Answers at once: the figures are of the send, and runs stay short.
        crn_processing_s=(0.0, 0.0),
    )
    assert config.opening_at is not None
    opening_ns = round(config.opening_at * NS)
    if opening_ns < target_ns:
        raise BenchError("the simulator would open before the target")
    with Simulator(config).serve_in_thread() as sim:
        yield Opening(sim, offset_ns, target_ns, opening_ns)


def fire(daemons: dict[str, Daemon], round_: int, offset_s: float, buffer_s: float) -> list[Shot]:
    """The given instances all aim at one opening; each one's first POST."""
    with opening(offset_s, seed=round_) as at:
        runs = {}
        for name, daemon in daemons.items():
            daemon.request(
                "configure",
                config={
                    "obs_base_url": at.sim.base_url,
                    "ntp_servers": at.sim.ntp_servers,
                    "target": iso(at.target_ns),
                    "token": at.sim.token(STUDENTS[name]),
                    "ecrn": [CRN],
                    "scrn": [],
                    "safety_buffer": buffer_s,
                },
            )
        for name, daemon in daemons.items():
            runs[name] = str(daemon.request("start")["run_id"])
        fire_ns = at.target_ns + round(buffer_s * NS)
        sleep_until_local(fire_ns - at.offset_ns + round(SETTLE_S * NS))
        margins = {}
        for name, daemon in daemons.items():
            events = daemon.events_until_done(runs[name])
            done = events["done"]
            if done["phase"] != "done":
                raise BenchError(f"{name}: run ended {done['phase']}: {done['reason']}")
            # The last calibration: the re-check just before the shot, whose bound it used.
            margins[name] = round((events["calibration"].get("margin_ms") or 0.0) * MS)
        shots = []
        posts = [r for r in at.sim.requests() if r.method == "POST"]
        for name in daemons:
            mine = [p for p in posts if p.subject == STUDENTS[name]]
            if not mine:
                raise BenchError(f"round {round_ + 1}: no POST from {name}")
            shots.append(
                Shot(
                    round_,
                    name,
                    len(daemons) > 1,
                    fire_ns,
                    at.opening_ns,
                    mine[0].arrival_ns,
                    margins[name],
                )
            )
        return shots


def offsets(rounds: int) -> list[float]:
    """The true-time offsets of the rounds, seconds, uniform in ±MAX_OFFSET_S."""
    rng = random.Random(OFFSET_SEED)
    return [rng.uniform(-MAX_OFFSET_S, MAX_OFFSET_S) for _ in range(rounds)]


@contextmanager
def instances(work: Path) -> Iterator[dict[str, Daemon]]:
    """One `obsd` per student, told only its instance name (its dirs follow from it)."""
    runtime = work / "run"
    runtime.mkdir(mode=0o700)
    base = {k: v for k, v in os.environ.items() if k not in ("OBSD_SOCKET", "OBSD_STATE_DIR")}
    base |= {"XDG_RUNTIME_DIR": str(runtime), "XDG_STATE_HOME": str(work / "state")}
    with ExitStack() as stack:
        daemons = {}
        for name in INSTANCES:
            socket_path = runtime / f"obsd-{name}" / "obsd.sock"
            process = stack.enter_context(
                started(
                    [str(BIN_DIR / "obsd")],
                    socket_path,
                    work / f"{name}.out",
                    base | {"OBSD_INSTANCE": name},
                )
            )
            daemons[name] = Daemon(process.socket_path, RUN_TIMEOUT_S)
        yield daemons


def measure(work: Path, rounds: int, buffer_s: float, loads: list[float]) -> list[Shot]:
    """Every round: the first instance alone, then all of them at once."""
    shots: list[Shot] = []
    with instances(work) as daemons:
        alone = {INSTANCES[0]: daemons[INSTANCES[0]]}
        print("warm-up round (not counted) ...", flush=True)
        fire(daemons, -1, 0.0, buffer_s)
        for round_, offset_s in enumerate(offsets(rounds)):
            solo = fire(alone, round_, offset_s, buffer_s)
            together = fire(daemons, round_, offset_s, buffer_s)
            shots += solo + together
            loads.append(os.getloadavg()[0])
            print(
                f"[{round_ + 1:>3}/{rounds}] offset {offset_s:+.3f} s: alone "
                f"{ms(solo[0].lateness_ns):+.3f} ms; together "
                + ", ".join(f"{s.instance} {ms(s.lateness_ns):+.3f}" for s in together)
                + f" ms (load {loads[-1]:.2f})",
                flush=True,
            )
    return shots


# -- the report ---------------------------------------------------------------------------


def spread(samples: Sequence[int]) -> str:
    """min / p50 / p95 / max of ns samples, in ms."""
    figures = [min(samples), *(percentile(samples, f) for f in (0.5, 0.95)), max(samples)]
    return " / ".join(f"{ms(value):.3f}" for value in figures)


def rows_of(shots: list[Shot]) -> list[Row]:
    """The results table: lateness together vs alone, early POSTs, the spread in a round."""
    alone = [s.lateness_ns for s in shots if not s.together]
    together = [s for s in shots if s.together]
    baseline = f"one instance alone: {spread(alone)}"
    rows = [
        Row(
            f"lateness min / p50 / p95 / max (ms), {name}, all {len(INSTANCES)} together",
            spread([s.lateness_ns for s in together if s.instance == name]),
            baseline,
            "reported (the cost of sharing)",
            None,
        )
        for name in INSTANCES
    ]
    rows.append(
        Row(
            "of which the error margin, all instances together, min / p50 / p95 / max (ms)",
            spread([s.margin_ns for s in together]),
            f"alone: {spread([s.margin_ns for s in shots if not s.together])}",
            "reported",
            None,
        )
    )
    rows.append(
        Row(
            "lateness minus the margin, all instances together, min / p50 / p95 / max (ms)",
            spread([s.lateness_ns - s.margin_ns for s in together]),
            f"alone: {spread([s.lateness_ns - s.margin_ns for s in shots if not s.together])}",
            "reported",
            None,
        )
    )
    rounds = sorted({s.round for s in together})
    widths = [
        max(s.lateness_ns for s in together if s.round == r)
        - min(s.lateness_ns for s in together if s.round == r)
        for r in rounds
    ]
    rows.append(
        Row(
            "last - first of the 4 in a round, min / p50 / p95 / max (ms)",
            spread(widths),
            "—",
            "reported",
            None,
        )
    )
    early = sum(s.early for s in shots)
    rows.append(
        Row(
            "POSTs before the opening (all rounds, alone and together)",
            f"{early} of {len(shots)}",
            "—",
            f"{TARGET_EARLY}",
            early == TARGET_EARLY,
        )
    )
    return rows


def render(
    rows: list[Row],
    notes: list[str],
    when: datetime,
    rounds: int,
    buffer_s: float,
    args: Sequence[str],
) -> str:
    """The markdown section for docs/performance.md."""
    out = [
        DOC_START,
        *section_head(
            f"Several instances: {len(INSTANCES)} students firing at the same instant",
            DOC_COMMAND,
            __file__,
            args,
            when,
            rows,
        ),
        "",
        f"Lateness = arrival - (target + safety_buffer), safety_buffer = {buffer_s * 1000:g} ms"
        f"{' (the default)' if buffer_s == Config().safety_buffer else ''}, judged by the "
        "simulator's arrival log; percentiles are nearest-rank.",
        "",
        "Method:",
        f"- {len(INSTANCES)} `obsd` processes, each started with only `OBSD_INSTANCE` set (its "
        "socket and state directory follow from the name, as under `obsd@NAME.service`), on "
        "this machine without systemd, for the whole run.",
        f"- {rounds} rounds, each with a true-time offset drawn uniformly in ±{MAX_OFFSET_S:g} s "
        f"(seed {OFFSET_SEED}). A round is two openings against fresh simulators with "
        f"{NTP_SERVERS} honest NTP servers and one course with free seats: first "
        f"`{INSTANCES[0]}` alone (the baseline), then all {len(INSTANCES)} instances, each "
        "with its own student and token, aiming at the same target. Each opening is "
        f"{LEAD_S:g} s after `start` (plus the local clock's lead over true time when it has "
        "one), so every instance calibrates, re-checks and makes its quiet final approach "
        "at the same time as the others. One untimed warm-up round comes first.",
        "- The error margin is the bound of the instance's time estimate at its last re-check "
        "(`margin_ms` of its last `calibration` event), which obsd adds to the fire instant so "
        "that even the estimate's lower edge is past target + buffer: NTP answers that take "
        "longer because four daemons ask at once widen it. What is left after it is waking, "
        "sending and the machine's stalls.",
        *(f"- {note}" for note in notes),
        DOC_END,
    ]
    return "\n".join(out) + "\n"


def main() -> int:
    """Run every round, print the table and (unless --no-docs) update docs/performance.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help=f"rounds (default {DEFAULT_ROUNDS}; fewer leave docs/performance.md alone)",
    )
    parser.add_argument(
        "--no-docs", action="store_true", help="print the table only; leave the docs alone"
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    when = datetime.now(UTC)
    stalls = machine_stalls(STALL_PROBE_S)
    loads = [os.getloadavg()[0]]
    buffer_s = Config().safety_buffer
    begin = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="obsd-bench-instances-") as work:
        shots = measure(Path(work), args.rounds, buffer_s, loads)
    wall_s = time.monotonic() - begin
    rows = rows_of(shots)
    notes = [
        stalls,
        f"Wall time {wall_s / 60:.1f} min. 1-minute load average: {loads[0]:.2f} at the start, "
        f"median {statistics.median(loads):.2f} and max {max(loads):.2f} over the rounds.",
    ]
    print()
    print_table(rows)
    for note in notes:
        print(f"note: {note}")
    if args.no_docs:
        return 0
    if args.rounds < DEFAULT_ROUNDS:
        print(f"fewer than {DEFAULT_ROUNDS} rounds: docs/performance.md left alone")
        return 0
    section = render(rows, notes, when, args.rounds, buffer_s, sys.argv[1:])
    write_section(section, DOC_START, DOC_END)
    print(f"wrote {DOC_PATH.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
