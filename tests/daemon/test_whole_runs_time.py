"""Whole runs of the real daemon against the time sources a VPS meets, judged by the simulator.

The simulator runs several NTP servers, each scripted (honest, lying, kissing, unsynchronised,
garbage, silent, slow), and can step true time against the local clocks at a chosen moment.
Its arrival log judges every run: no POST before the opening, the shot on time whenever an
honest majority (or OBS's Date header) places true time, and no server asked more often than
once per two seconds. The opening is far enough ahead that both re-checks before the shot
happen, as on a real day; so each run takes 13 s, and all of them are in the slow suite (the
default run has a lying server in test_whole_runs.py, the rules in test_driver_time.py).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from obsd.core.time_sources import MIN_QUERY_INTERVAL_NS
from obsd.sim import NtpBehaviour
from tests.harness import NS, Registration, registration

OPENING_IN_S = 12.0
RUN_TIMEOUT_S = 40.0
MS = NS // 1000
HONEST = NtpBehaviour(delay_s=0.002)
# Loopback: the send path and the margin stay well inside this after the 1 ms buffer.
ON_TIME_MS = 30.0


def run(
    short_dir: Path, ntp: list[NtpBehaviour], **sim: Any
) -> tuple[Registration, dict[str, Any]]:
    """One whole run with these NTP servers; the registration and the run's record."""
    short_dir.mkdir(exist_ok=True)
    with registration(short_dir, opening_in_s=OPENING_IN_S, ntp=ntp, **sim) as reg:
        reg.plan(ecrn=["21234"])
        run_id = reg.start()
        reg.wait_for("done", timeout_s=RUN_TIMEOUT_S)
        detail = reg.run_detail(run_id)
        queries = reg.sim.ntp_queries()
    for server in range(len(ntp)):
        # On the host's monotonic clock: a scripted step of true time between two queries
        # would otherwise shorten (or stretch) their gap by the step.
        times = [q.mono_ns for q in queries if q.server == server]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # Loopback jitter of the arrival stamps is microseconds; the rule is on our sends.
        assert min(gaps, default=MIN_QUERY_INTERVAL_NS) >= MIN_QUERY_INTERVAL_NS - MS, server
    return reg, detail


def late_ms(reg: Registration) -> float:
    """How long after the opening the first POST arrived, by the simulator's true clock."""
    first = reg.posts()[0]
    assert first.arrival_ns >= reg.opening_ns, "never early"
    return (first.arrival_ns - reg.opening_ns) / MS


def verdicts(detail: dict[str, Any]) -> list[str]:
    return [source["verdict"] for source in detail["calibration"]["sources"]]


@pytest.mark.slow
def test_a_lying_server_with_the_lowest_delay_is_outvoted(short_dir: Path) -> None:
    liar = NtpBehaviour(lie_s=-10.0)
    reg, detail = run(short_dir, [liar, HONEST, HONEST])
    assert late_ms(reg) < ON_TIME_MS
    assert verdicts(detail)[0] == "falseticker"
    assert detail["phase"] == "done"


@pytest.mark.slow
def test_a_true_time_step_after_the_early_rechecks_is_caught_before_the_shot(
    short_dir: Path,
) -> None:
    """True time steps 2 s against the local clocks 6 s before the opening (a VM paused, or
    its clocks corrected), after the re-check 10 s before: the last one, 3.5 s before, sees it."""
    for step_s in (-2.0, 2.0):
        config = {"true_step_s": step_s, "true_step_before_s": 6.0}
        reg, _ = run(short_dir / f"step{step_s:+.0f}", [HONEST, HONEST, HONEST], **config)
        assert late_ms(reg) < ON_TIME_MS, step_s


@pytest.mark.slow
def test_kiss_unsynchronised_garbage_and_silent_servers_leave_the_honest_one(
    short_dir: Path,
) -> None:
    bad = [
        NtpBehaviour(kind="kiss", kiss_code="RATE"),
        NtpBehaviour(kind="unsynchronised"),
        NtpBehaviour(kind="garbage"),
        NtpBehaviour(kind="silent"),
    ]
    reg, detail = run(short_dir, [*bad, HONEST])
    assert late_ms(reg) < ON_TIME_MS
    assert verdicts(detail) == [
        "kiss",
        "unsynchronised",
        "invalid",
        "no_answer",
        "chosen",
        "unsynchronised" if not detail["calibration"]["kernel"]["synchronised"] else "unused",
    ]
    kissed = [q for q in reg.sim.ntp_queries() if q.server == 0]
    assert len(kissed) == 1, "a RATE kiss rests the server for 64 s"


@pytest.mark.slow
def test_a_liar_ahead_cannot_make_it_early_and_the_date_header_breaks_the_tie(
    short_dir: Path,
) -> None:
    for lie_s in (10.0, -10.0):
        reg, detail = run(short_dir / f"lie{lie_s:+.0f}", [HONEST, NtpBehaviour(lie_s=lie_s)])
        assert late_ms(reg) < ON_TIME_MS, lie_s
        assert detail["calibration"]["time_status"] == "conflict"


@pytest.mark.slow
def test_a_lying_majority_is_overruled_by_obs_date_header(short_dir: Path) -> None:
    reg, detail = run(short_dir, [NtpBehaviour(lie_s=3.0)] * 3)
    assert late_ms(reg) < 1_300, "by the Date header: late, never early"
    assert "Date header disagrees" in detail["calibration"]["time_conflict"]


@pytest.mark.slow
def test_two_servers_close_but_apart_fire_on_the_later(short_dir: Path) -> None:
    reg, detail = run(short_dir, [HONEST, NtpBehaviour(lie_s=-0.4)])
    assert 400 <= late_ms(reg) < 400 + ON_TIME_MS, "the latest credible instant"
    assert detail["calibration"]["time_status"] == "conflict"


@pytest.mark.slow
def test_with_every_server_silent_the_date_header_or_the_kernel_places_the_shot(
    short_dir: Path,
) -> None:
    reg, detail = run(short_dir, [NtpBehaviour(kind="silent")] * 2, clock_offset_s=0.0)
    status = detail["calibration"]["time_status"]
    if status == "obs_date":
        assert late_ms(reg) < 1_300
    else:
        assert status == "system_clock", "only a synchronised kernel may stand alone"
        late_ms(reg)
