"""Fire precision: obsd's first POST judged by the simulator's arrival log, vs a naive client."""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
    fixed,
    iso,
    machine_stalls,
    ms,
    obsd_started,
    percentile,
    print_table,
    section_head,
    sleep_until_local,
    spread,
    stop,
    write_section,
)
from benchlib import (
    judge_first as raise_judge,
)

from obsd.core.config import Config
from obsd.core.timing import MS, NS
from obsd.core.waiting import FINAL_APPROACH_S
from obsd.sim import Course, NtpBehaviour, RunningSimulator, SimConfig, Simulator, Student

DOC_START: Final = "<!-- bench_fire:start -->"
DOC_END: Final = "<!-- bench_fire:end -->"
DOC_COMMAND: Final = ".venv/bin/python tests/bench/bench_fire.py"
NAIVE_CLIENT: Final = Path(__file__).resolve().with_name("naive_client.py")

# Issue 3, section 4: at least 100 runs per configuration. Fewer runs (a smoke test) leave
# docs/performance.md alone, so a quick check cannot replace the real figures.
DEFAULT_RUNS: Final = 100
# Long enough to catch the machine's multi-ms stalls (on this VM: dozens a minute).
STALL_PROBE_S: Final = 20.0
# Fixed seed: every invocation draws the same clock offsets, in the same order.
OFFSET_SEED: Final = 3
# The simulator's true time is this far from the local clock at most, either way (issue 3).
MAX_OFFSET_S: Final = 5.0
# Opening lead of an obsd run, from `start` to the instant: calibration takes 0.1-0.3 s here,
# which still leaves more than the engine's quiet final approach (FINAL_APPROACH_S, 1.5 s),
# so the NTP re-check before the instant and the quiet approach both happen as in a real run.
DAEMON_LEAD_S: Final = 2.0
# The naive client's lead: interpreter start and `import httpx` (~0.3 s) must be over by then.
NAIVE_LEAD_S: Final = 1.0
# Read results this long after the shot: the answer (22 ms with injected delay) is in by then,
# and the benchmark process stays asleep (off the simulator thread's GIL) until after the shot.
SETTLE_S: Final = 0.1
# A run that has not ended by then is broken, not slow.
RUN_TIMEOUT_S: Final = 30.0
# The simulator opens this long after the target: its opening, kept as a float of epoch
# seconds, lands within ~0.4 µs of the target, and the judge must never be more lenient.
OPENING_GUARD_NS: Final = 1_000
# Injected one-way latency of the second configuration (issue 3): 20 ± 2 ms.
REQUEST_DELAY_S: Final = 0.020
REQUEST_JITTER_S: Final = 0.002
# Issue 10: the cost of the error margin is measured with a 4-server honest set.
NTP_SERVERS: Final = 4
# One add with free seats: every run ends after its first POST.
STUDENT: Final = "150200001"
CRN: Final = "21234"
QUOTA: Final = 40
NOT_OPEN_CODE: Final = "VAL02"
# Worst runs listed with their error split, for diagnosis.
WORST_SHOWN: Final = 3

TARGET_EARLY: Final = 0
TARGET_P50_MS: Final = 0.5
TARGET_P99_MS: Final = 2.0
# Issue 10: what the time estimate's error bound costs the shot on loopback.
TARGET_MARGIN_P50_MS: Final = 0.5


@dataclass(frozen=True, slots=True)
class Scenario:
    """A client and a network to measure it on."""

    key: str
    label: str
    naive: bool
    request_delay_s: float = 0.0
    request_jitter_s: float = 0.0


LOOPBACK: Final = Scenario("loopback", "obsd, loopback", naive=False)
LATENCY: Final = Scenario(
    "latency",
    "obsd, 20 ± 2 ms one-way",
    naive=False,
    request_delay_s=REQUEST_DELAY_S,
    request_jitter_s=REQUEST_JITTER_S,
)
NAIVE: Final = Scenario("naive", "naive client, loopback", naive=True)
SCENARIOS: Final = (LOOPBACK, LATENCY, NAIVE)


@dataclass(frozen=True, slots=True)
class EngineView:
    """What the daemon's events say about its shot, in its own NTP-derived true time."""

    ntp_offset_ns: int
    ntp_delay_ns: int
    send_delay_ns: int
    margin_ns: int  # the error bound of the time estimate, added to the fire instant
    fire_at_ns: int
    planned_call_ns: int  # request_armed.planned_ns: when the engine meant to call send
    call_ns: int  # crn_update.sent_ns: when it did


@dataclass(frozen=True, slots=True)
class Shot:
    """One run's first POST as the simulator judged it (instants in true epoch ns)."""

    run: int  # 0-based round; -1 for the warm-up
    offset_ns: int
    target_ns: int
    opening_ns: int
    fire_ns: int  # target + safety buffer: where the shot should land
    received_ns: int  # its first byte reached the simulator
    arrival_ns: int  # received + injected delay: what OBS judges
    result_code: str
    engine: EngineView | None

    @property
    def early(self) -> bool:
        """It reached OBS before the opening (answered VAL02)."""
        return self.arrival_ns < self.opening_ns

    @property
    def lateness_ns(self) -> int:
        """arrival - (target + safety buffer), injected delay included."""
        return self.arrival_ns - self.fire_ns

    @property
    def net_lateness_ns(self) -> int:
        """Lateness minus this request's injected delay (arrival - received)."""
        return self.received_ns - self.fire_ns

    @property
    def after_target_ns(self) -> int:
        """arrival - target: how long after the opening OBS saw it."""
        return self.arrival_ns - self.target_ns

    @property
    def injected_ns(self) -> int:
        """The delay the simulator added to this request."""
        return self.arrival_ns - self.received_ns


@dataclass(frozen=True, slots=True)
class Split:
    """An obsd shot's net lateness as the sum of its causes (ns; positive = later)."""

    clock: int  # -(NTP offset - true offset): the clock map's error, from the last re-check
    wake: int  # the send call after the planned instant
    margin: int  # the time estimate's error bound, added to the fire instant
    plan: int  # planned call + send delay - (target + buffer + margin); 0 unless it was late
    send: int  # the rest: real call → first byte, minus the send delay obsd subtracted
    send_path: int  # real call → first byte at the simulator (send + subtracted delay)
    ntp_delay: int
    send_delay: int


def split(shot: Shot) -> Split:
    """Split an obsd shot's net lateness into clock, wake-up, plan and send-path errors."""
    view = shot.engine
    if view is None:
        raise BenchError("only obsd shots have an engine view")
    clock_error = view.ntp_offset_ns - shot.offset_ns
    wake = view.call_ns - view.planned_call_ns
    plan = view.planned_call_ns + view.send_delay_ns - shot.fire_ns - view.margin_ns
    send = shot.net_lateness_ns + clock_error - wake - view.margin_ns - plan
    return Split(
        clock=-clock_error,
        wake=wake,
        margin=view.margin_ns,
        plan=plan,
        send=send,
        send_path=send + view.send_delay_ns,
        ntp_delay=view.ntp_delay_ns,
        send_delay=view.send_delay_ns,
    )


# -- one run ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Opening:
    """A simulator opening soon, and the instants that go with it."""

    sim: RunningSimulator
    offset_ns: int
    target_ns: int
    opening_ns: int


@contextmanager
def simulator(scenario: Scenario, offset_s: float, lead_s: float, seed: int) -> Iterator[Opening]:
    """A fresh simulated OBS whose true clock is `offset_s` off ours, opening in `lead_s`."""
    offset_ns = round(offset_s * NS)  # as obsd.sim.clock.SimClock rounds it
    target_ns = (time.time_ns() + offset_ns + round(lead_s * NS)) // 1000 * 1000
    config = SimConfig(
        opening_at=(target_ns + OPENING_GUARD_NS) / NS,
        clock_offset_s=offset_s,
        courses=[Course(crn=CRN, quota=QUOTA)],
        students=[Student(subject=STUDENT)],
        request_delay_s=scenario.request_delay_s,
        request_jitter_s=scenario.request_jitter_s,
        ntp=[NtpBehaviour()] * NTP_SERVERS,
        seed=seed,
        # Answers at once: the figures are of the send, and runs stay short.
        crn_processing_s=(0.0, 0.0),
    )
    assert config.opening_at is not None
    opening_ns = round(config.opening_at * NS)  # as obsd.sim.rules.Registrar rounds it
    if opening_ns < target_ns:
        raise BenchError("the simulator would open before the target")
    with Simulator(config).serve_in_thread() as sim:
        yield Opening(sim, offset_ns, target_ns, opening_ns)


def first_post(opening: Opening, run: int, fire_ns: int, engine: EngineView | None) -> Shot:
    """The first registration POST in the simulator's record, as a Shot."""
    posts = [r for r in opening.sim.requests() if r.method == "POST"]
    if not posts:
        raise BenchError(f"round {run + 1}: the simulator saw no POST")
    post = posts[0]
    try:
        code = str(post.response["ecrnResultList"][0]["resultCode"])
    except (KeyError, IndexError, TypeError):
        raise BenchError(
            f"round {run + 1}: unexpected answer {post.status}: {post.response!r}"
        ) from None
    shot = Shot(
        run=run,
        offset_ns=opening.offset_ns,
        target_ns=opening.target_ns,
        opening_ns=opening.opening_ns,
        fire_ns=fire_ns,
        received_ns=post.received_ns,
        arrival_ns=post.arrival_ns,
        result_code=code,
        engine=engine,
    )
    if shot.early != (code == NOT_OPEN_CODE):
        raise BenchError(
            f"round {run + 1}: arrival {shot.arrival_ns} vs opening {shot.opening_ns} "
            f"disagrees with the answer {code}"
        )
    return shot


def engine_view(run_id: str, events: dict[str, dict[str, Any]]) -> EngineView:
    """The figures the daemon logged about its first shot."""
    done = events["done"]
    if done["phase"] != "done":
        raise BenchError(f"run {run_id} ended {done['phase']}: {done['reason']}")
    calibration, sent, update = (
        events.get(kind) for kind in ("calibration", "request_armed", "crn_update")
    )
    if calibration is None or sent is None or update is None:
        raise BenchError(f"run {run_id}: missing events, got {sorted(events)}")
    if calibration["ntp_offset_ms"] is None or calibration["send_delay_ms"] is None:
        raise BenchError(f"run {run_id}: calibration incomplete: {calibration}")
    return EngineView(
        ntp_offset_ns=round(calibration["ntp_offset_ms"] * MS),
        ntp_delay_ns=round(calibration["ntp_delay_ms"] * MS),
        send_delay_ns=round(calibration["send_delay_ms"] * MS),
        margin_ns=round((calibration.get("margin_ms") or 0.0) * MS),
        fire_at_ns=calibration["fire_at_ns"],
        planned_call_ns=sent["planned_ns"],
        call_ns=update["sent_ns"],
    )


def sleep_through(fire_local_ns: int) -> None:
    """Sleep (off the simulator thread's GIL) until the shot is over."""
    sleep_until_local(fire_local_ns + round(SETTLE_S * NS))


def obsd_shot(
    daemon: Daemon,
    scenario: Scenario,
    run: int,
    offset_s: float,
    buffer_s: float,
    *,
    wait: Callable[[int], None] = sleep_through,
    judge_first: bool = False,
) -> Shot:
    """One obsd run against a fresh simulator; the simulator's verdict on its first POST.

    `wait` is handed the fire instant on the local clock and returns once the shot is over;
    `judge_first` puts the simulator's threads at real-time priority (benchlib.judge_first).
    """
    # The daemon refuses a target that has passed by the LOCAL clock, so the lead is
    # stretched when the local clock is ahead of true time.
    lead_s = DAEMON_LEAD_S + max(0.0, -offset_s)
    with simulator(scenario, offset_s, lead_s, seed=run) as opening:
        sim = opening.sim
        if judge_first:
            raise_judge()
        daemon.request(
            "configure",
            config={
                "obs_base_url": sim.base_url,
                "ntp_servers": sim.ntp_servers,
                "target": iso(opening.target_ns),
                "token": sim.token(STUDENT),
                "ecrn": [CRN],
                "scrn": [],
                "safety_buffer": buffer_s,
            },
        )
        run_id = str(daemon.request("start")["run_id"])
        fire_ns = opening.target_ns + round(buffer_s * NS)
        wait(fire_ns - opening.offset_ns)
        events = daemon.events_until_done(run_id)
        return first_post(opening, run, fire_ns, engine_view(run_id, events))


def naive_shot(run: int, offset_s: float, buffer_s: float) -> Shot:
    """One naive-client run against a fresh simulator; the simulator's verdict on its POST."""
    # Its wait on the local clock is lead + offset: at least NAIVE_LEAD_S either way.
    lead_s = NAIVE_LEAD_S + max(0.0, -offset_s)
    with simulator(NAIVE, offset_s, lead_s, seed=run) as opening:
        sim = opening.sim
        fire_ns = opening.target_ns + round(buffer_s * NS)
        # It believes its clock: it fires when the local clock reads target + buffer.
        proc = subprocess.Popen(
            [
                sys.executable,
                str(NAIVE_CLIENT),
                sim.base_url,
                sim.token(STUDENT),
                str(fire_ns),
                CRN,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            sleep_until_local(fire_ns + round(SETTLE_S * NS))
            _, err = proc.communicate(timeout=RUN_TIMEOUT_S)
        finally:
            stop(proc)
        if proc.returncode != 0:
            raise BenchError(f"naive client failed ({proc.returncode}): {err.decode()}")
        return first_post(opening, run, fire_ns, None)


# -- the run ------------------------------------------------------------------------------


def offsets(runs: int) -> list[float]:
    """The true-time offsets of the runs, seconds, uniform in ±MAX_OFFSET_S."""
    rng = random.Random(OFFSET_SEED)
    return [rng.uniform(-MAX_OFFSET_S, MAX_OFFSET_S) for _ in range(runs)]


def progress(run: int, runs: int, offset_s: float, shots: dict[str, Shot], load: float) -> None:
    """One line per round: each client's lateness (net of injected delay) and the load."""
    parts = []
    for scenario in SCENARIOS:
        shot = shots[scenario.key]
        late = ms(shot.net_lateness_ns)
        figure = f"{late:+.1f}" if scenario.naive else f"{late:+.3f}"
        parts.append(f"{scenario.key} {figure} ms{' EARLY' if shot.early else ''}")
    print(
        f"[{run + 1:>3}/{runs}] offset {offset_s:+.3f} s: "
        + ", ".join(parts)
        + f" (load {load:.2f})",
        flush=True,
    )


def measure(
    work: Path,
    runs: int,
    buffer_s: float,
    loads: list[float],
) -> dict[str, list[Shot]]:
    """Every run of every scenario, interleaved so that drifting load hits all alike.

    Appends the 1-minute load average after each round to `loads`.
    """
    results: dict[str, list[Shot]] = {scenario.key: [] for scenario in SCENARIOS}
    with obsd_started(work / "state") as started:
        daemon = Daemon(started.socket_path, RUN_TIMEOUT_S)
        print("warm-up run (not counted) ...", flush=True)
        obsd_shot(daemon, LOOPBACK, -1, 0.0, buffer_s)
        naive_shot(-1, 0.0, buffer_s)
        for run, offset_s in enumerate(offsets(runs)):
            shots = {
                scenario.key: (
                    naive_shot(run, offset_s, buffer_s)
                    if scenario.naive
                    else obsd_shot(daemon, scenario, run, offset_s, buffer_s)
                )
                for scenario in SCENARIOS
            }
            for key, shot in shots.items():
                results[key].append(shot)
            loads.append(os.getloadavg()[0])
            progress(run, runs, offset_s, shots, loads[-1])
    return results


# -- the report ---------------------------------------------------------------------------


def signed(value: float, digits: int = 3) -> str:
    """`value` with an explicit sign (none on a value that rounds to zero)."""
    text = fixed(value, digits)
    return text if text.startswith("-") or text.strip("0.") == "" else "+" + text


def early_count(shots: Sequence[Shot]) -> str:
    """How many of the shots reached OBS before the opening."""
    return f"{sum(shot.early for shot in shots)} of {len(shots)}"


def target_rows(results: dict[str, list[Shot]]) -> list[Row]:
    """The issue's targets, each against the naive baseline of the same run."""
    loop, late, naive = (results[s.key] for s in SCENARIOS)
    loop_ns = [s.lateness_ns for s in loop]
    naive_ns = [s.lateness_ns for s in naive]
    naive_abs = [abs(value) for value in naive_ns]
    p50, p99 = ms(percentile(loop_ns, 0.5)), ms(percentile(loop_ns, 0.99))
    naive_spread = (
        f"naive: {ms(percentile(naive_ns, 0.5)):+.1f} ms, median absolute error "
        f"{ms(percentile(naive_abs, 0.5)):.0f} ms"
    )
    early_loop = sum(s.early for s in loop)
    early_late = sum(s.early for s in late)
    margins = [split(shot).margin for shot in loop]
    margin_p50 = ms(percentile(margins, 0.5))
    return [
        Row(
            "early arrivals (VAL02), loopback",
            early_count(loop),
            f"naive: {early_count(naive)}",
            f"{TARGET_EARLY}",
            early_loop <= TARGET_EARLY,
        ),
        Row(
            "early arrivals (VAL02), 20 ± 2 ms one-way",
            early_count(late),
            f"naive: {early_count(naive)} (loopback)",
            f"{TARGET_EARLY}",
            early_late <= TARGET_EARLY,
        ),
        Row(
            "lateness p50, loopback",
            f"{p50:.3f} ms",
            naive_spread,
            f"<= {TARGET_P50_MS} ms",
            p50 <= TARGET_P50_MS,
        ),
        Row(
            "lateness p99, loopback",
            f"{p99:.3f} ms",
            f"naive: {ms(percentile(naive_ns, 0.99)):+.1f} ms",
            f"<= {TARGET_P99_MS} ms",
            p99 <= TARGET_P99_MS,
        ),
        Row(
            f"error margin added to the fire instant, p50 / max, loopback, {NTP_SERVERS} servers",
            f"{margin_p50:.3f} / {ms(max(margins)):.3f} ms",
            "without the margin: the same shot that much earlier",
            f"p50 <= {TARGET_MARGIN_P50_MS} ms",
            margin_p50 <= TARGET_MARGIN_P50_MS,
        ),
        Row(
            "first POST after the opening (arrival - target), p50, loopback",
            f"{ms(percentile([s.after_target_ns for s in loop], 0.5)):.3f} ms",
            f"naive: {ms(percentile([s.after_target_ns for s in naive], 0.5)):+.1f} ms",
            ">= 0 always",
            all(s.after_target_ns >= 0 for s in loop),
        ),
    ]


def distribution_lines(results: dict[str, list[Shot]]) -> list[str]:
    """The lateness distributions as a markdown table."""
    loop, late, naive = (results[s.key] for s in SCENARIOS)

    def line(label: str, shots: list[Shot], values: Callable[[Shot], int], digits: int) -> str:
        after = [s.after_target_ns for s in shots]
        return (
            f"| {label} | {len(shots)} | {sum(s.early for s in shots)} | "
            f"{spread([values(s) for s in shots], digits)} | "
            f"{ms(percentile(after, 0.5)):.{digits}f} / {ms(max(after)):.{digits}f} |"
        )

    return [
        "| client, network | runs | early | lateness min / p50 / p95 / p99 / max (ms) | "
        "arrival - target p50 / max (ms) |",
        "|---|---|---|---|---|",
        line(LOOPBACK.label, loop, lambda s: s.lateness_ns, 3),
        line(f"{LATENCY.label}, minus the injected delay", late, lambda s: s.net_lateness_ns, 3),
        line(f"{LATENCY.label}, delay included", late, lambda s: s.lateness_ns, 3),
        line(NAIVE.label, naive, lambda s: s.lateness_ns, 1),
    ]


def split_lines(results: dict[str, list[Shot]]) -> list[str]:
    """Where obsd's net lateness comes from, per configuration, as a markdown table."""
    splits = {s.key: [split(shot) for shot in results[s.key]] for s in (LOOPBACK, LATENCY)}
    parts: list[tuple[str, Callable[[Split], int]]] = [
        ("clock: -(estimated offset - true offset) at the last re-check", lambda p: p.clock),
        ("wake-up: send called - planned call instant", lambda p: p.wake),
        ("margin: the estimate's error bound, added to the fire instant", lambda p: p.margin),
        ("plan: planned call + send delay - (target + buffer + margin)", lambda p: p.plan),
        (
            "send path residual: call → first byte at OBS, minus the subtracted send delay",
            lambda p: p.send,
        ),
        ("(send path: call → first byte at OBS)", lambda p: p.send_path),
        ("(send delay obsd measured and subtracted, `send_delay_ms`)", lambda p: p.send_delay),
        ("(NTP round-trip delay of the chosen server, `ntp_delay_ms`)", lambda p: p.ntp_delay),
    ]
    out = [
        f"| component (ms, min / p50 / p95 / p99 / max) | {LOOPBACK.label} | {LATENCY.label} |",
        "|---|---|---|",
    ]
    for label, part in parts:
        out.append(
            f"| {label} | "
            + " | ".join(
                spread([part(p) for p in splits[key]]) for key in (LOOPBACK.key, LATENCY.key)
            )
            + " |"
        )
    return out


def worst_notes(results: dict[str, list[Shot]]) -> list[str]:
    """The latest obsd shots of each configuration with their error split."""
    notes = []
    for scenario in (LOOPBACK, LATENCY):
        worst = sorted(results[scenario.key], key=lambda s: s.net_lateness_ns)[-WORST_SHOWN:]
        described = []
        for shot in reversed(worst):
            parts = split(shot)
            described.append(
                f"round {shot.run + 1} (offset {shot.offset_ns / NS:+.3f} s): "
                f"{ms(shot.net_lateness_ns):.3f} ms = clock {signed(ms(parts.clock))} + wake-up "
                f"{signed(ms(parts.wake))} + margin {signed(ms(parts.margin))} + plan "
                f"{signed(ms(parts.plan))} + send path "
                f"residual {signed(ms(parts.send))}"
            )
        notes.append(
            f"Latest {WORST_SHOWN} shots, {scenario.label} (net of injected delay): "
            + "; ".join(described)
            + "."
        )
    return notes


def render(
    results: dict[str, list[Shot]],
    rows: list[Row],
    notes: list[str],
    when: datetime,
    runs: int,
    buffer_s: float,
    args: Sequence[str],
) -> str:
    """The markdown section for docs/performance.md."""
    out = [
        DOC_START,
        *section_head(
            "Fire precision: the first POST against the simulator's arrival log",
            DOC_COMMAND,
            __file__,
            args,
            when,
            rows,
        ),
        "",
        f"Lateness = arrival - (target + safety_buffer), safety_buffer = {buffer_s * 1000:g} ms"
        f"{' (the default)' if buffer_s == Config().safety_buffer else ''}; negative is before "
        "the instant aimed at, and early means before the opening (the target) itself. "
        "Percentiles are nearest-rank (p99 of 100 runs is the second largest).",
        "",
        *distribution_lines(results),
        "",
        "Where obsd's lateness comes from (net of injected delay; the five components add up "
        "to it exactly, the send path residual being what the other three leave):",
        "",
        *split_lines(results),
        "",
        "Method:",
        f"- {runs} rounds; each round runs the three clients in turn with the same true-time "
        f"offset, drawn uniformly in ±{MAX_OFFSET_S:g} s (seed {OFFSET_SEED}), each against a "
        "fresh `obsd.sim.Simulator` in a thread of the benchmark (true time = local clock + "
        f"offset, served by {NTP_SERVERS} honest NTP servers; one course with free seats, so a "
        "run ends after "
        "its first POST). One untimed warm-up round with offset 0 comes first.",
        "- Judge: the simulator's record of the first POST. `received_ns` is the kernel's "
        "receive time of its first bytes (SO_TIMESTAMPNS, obsd/sim/stamped_socket.py) in true "
        "time, so the simulator's own scheduling does not move it; `arrival_ns` adds the "
        "injected request "
        "delay, and is what OBS's opening check uses. The simulator opens "
        f'{OPENING_GUARD_NS / 1000:g} µs after the target (float rounding), so "early" is '
        "judged strictly; every early arrival was cross-checked with the VAL02 it drew.",
        f"- obsd: one daemon (`python -m obsd`) for all runs, reconfigured each run "
        "(obs_base_url, ntp_servers = the simulator's, target = the opening, token, one ECRN, "
        f"safety_buffer), then `start`. The opening is {DAEMON_LEAD_S:g} s ahead, plus the "
        "local clock's lead over true time when it has one (the daemon refuses a target that "
        "has passed by the local clock), so calibration, the NTP re-check and the "
        f"{FINAL_APPROACH_S:g} s quiet final approach all happen. The benchmark sleeps "
        "through the shot and reads the run's events afterwards.",
        f"- {LATENCY.label}: the simulator delays each request {REQUEST_DELAY_S * 1000:g} ± "
        f"{REQUEST_JITTER_S * 1000:g} ms (uniform) after its first byte, HEAD probes "
        'included; "minus the injected delay" subtracts each request\'s own delay '
        "(arrival_ns - received_ns), so the figure is exact.",
        "- Naive baseline (tests/bench/naive_client.py, a fresh process per run): sleeps with "
        "`time.sleep` until the LOCAL clock reads target + safety_buffer, then `httpx.post` "
        "(new client, new connection), as most registration scripts do. Started at least "
        f"{NAIVE_LEAD_S:g} s (local clock) before its deadline.",
        "- Error split: clock = -(the last calibration's `ntp_offset_ms` - the simulator's "
        "true offset), the last calibration being the one written at the re-check just before "
        "the shot, whose estimate the shot used; wake-up = `crn_update.sent_ns` - "
        "`request_armed.planned_ns` (both the daemon's own clock map, so exact); margin = that "
        "calibration's `margin_ms` (the estimate's error bound at the shot, added to the fire "
        "instant so that even its lower edge is past target + buffer); plan = 0 unless the run "
        "started too late to keep to its plan.",
        *(f"- {note}" for note in notes),
        DOC_END,
    ]
    return "\n".join(out) + "\n"


def main() -> int:
    """Run every round, print the tables and (unless --no-docs) update docs/performance.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--runs",
        type=int,
        default=DEFAULT_RUNS,
        help=f"rounds (each: two obsd runs and a naive one; default "
        f"{DEFAULT_RUNS}; fewer leave docs/performance.md alone)",
    )
    parser.add_argument(
        "--safety-buffer",
        type=float,
        default=Config().safety_buffer,
        help="obsd's safety_buffer in seconds, 0-0.1 (default: the daemon's default)",
    )
    parser.add_argument(
        "--no-docs",
        action="store_true",
        help="print the tables only; leave docs/performance.md alone",
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    when = datetime.now(UTC)
    stalls = machine_stalls(STALL_PROBE_S)
    loads = [os.getloadavg()[0]]
    begin = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="obsd-bench-fire-") as work:
        results = measure(Path(work), args.runs, args.safety_buffer, loads)
    wall_s = time.monotonic() - begin
    rows = target_rows(results)
    notes = [
        *worst_notes(results),
        stalls,
        f"Wall time {wall_s / 60:.1f} min. 1-minute load average: {loads[0]:.2f} at "
        f"the start, median {statistics.median(loads):.2f} and max {max(loads):.2f} "
        "over the rounds (anything else running on the machine shows here).",
    ]
    print()
    print_table(rows)
    print()
    for line in [*distribution_lines(results), "", *split_lines(results)]:
        print(line)
    for note in notes:
        print(f"note: {note}")
    argv = sys.argv[1:]
    if args.no_docs:
        return 0
    if args.runs < DEFAULT_RUNS:
        print(f"fewer than {DEFAULT_RUNS} runs: docs/performance.md left alone")
        return 0
    write_section(
        render(results, rows, notes, when, args.runs, args.safety_buffer, argv), DOC_START, DOC_END
    )
    print(f"wrote {DOC_PATH.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
