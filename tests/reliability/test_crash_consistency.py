"""Crash consistency: the real daemon, SIGKILLed through real runs, loses nothing, misfires never.

The harness (tests/reliability/crash_harness.py) kills obsd right after acknowledged commands,
while calibrating, while waiting, within ±50 ms of a shot, between attempts and as the log
rotates; restarts it; and checks the files, the replay, the acknowledged commands, the run's
end and the simulator's arrival log. Reproduce the long suite with
`pytest -q -m slow tests/reliability/test_crash_consistency.py -s` (OBSD_CRASH_SEED picks the
seeds; the summary goes to stdout and to crash_consistency_summary.json in the test's tmp dir).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

from obsd.adapters.token_store import TOKEN_FILE
from obsd.sim import Simulator
from obsd.sim.app import RequestRecord
from tests.conftest import DaemonProcess
from tests.harness import NS, STUDENT, registration, sim_config
from tests.reliability.crash_harness import (
    DEBOUNCE_NS,
    DROP_CRN,
    FAST_PLAN,
    FULL_CRN,
    KINDS,
    PHASES,
    TERMINAL,
    CrashScenario,
    CrashStats,
    KillPlan,
    codes,
    cut_log_after,
    read_disk_log,
)

DEFAULT_SEED: Final = 20260205
# The issue asks for at least 200 kills across the phases.
MIN_KILLS: Final = 200
# Every phase must be hit often enough that a once-in-a-while bug has a chance to show.
MIN_KILLS_PER_PHASE: Final = 15
# CI gives this suite ~20 minutes on 2 cores; scenarios stop being started after this.
SUITE_BUDGET_S: Final = 17 * 60.0
# A scenario yields ~15 kills: this bounds the loop well above what 200 kills need.
MAX_SCENARIOS: Final = 40
SUMMARY_FILE: Final = "crash_consistency_summary.json"


def _seed() -> int:
    """The suite's base seed: OBSD_CRASH_SEED, else the default."""
    return int(os.environ.get("OBSD_CRASH_SEED", DEFAULT_SEED))


def _report(stats: CrashStats, tmp_path: Path, started: float) -> None:
    """Write the figures to the tmp dir and stdout (visible with -s)."""
    stats.elapsed_s = time.monotonic() - started
    summary = stats.summary()
    (tmp_path / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\ncrash consistency summary ({tmp_path / SUMMARY_FILE}):")
    print(json.dumps({k: v for k, v in summary.items() if k != "scenarios_detail"}, indent=2))


@pytest.mark.slow
def test_a_handful_of_kills_in_every_phase(short_dir: Path, tmp_path: Path) -> None:
    """One run killed once in each phase (the quick variant, < 60 s, for running by hand)."""
    stats = CrashStats(seed=_seed())
    started = time.monotonic()
    try:
        CrashScenario(short_dir / "fast", 0, _seed(), "retry_full", FAST_PLAN, stats).run()
    finally:
        _report(stats, tmp_path, started)
    assert all(stats.kills[phase] >= 1 for phase in PHASES), stats.kills
    assert stats.torn_tails_repaired >= 1 and stats.runs_completed == 1


@pytest.mark.slow
def test_hundreds_of_kills_across_every_phase(short_dir: Path, tmp_path: Path) -> None:
    """Scenarios of every kind under random kill plans until at least 200 kills."""
    base = _seed()
    stats = CrashStats(seed=base)
    started = time.monotonic()
    try:
        for index in range(MAX_SCENARIOS):
            if stats.total_kills >= MIN_KILLS and all(
                stats.kills[phase] >= MIN_KILLS_PER_PHASE for phase in PHASES
            ):
                break
            if time.monotonic() - started > SUITE_BUDGET_S:
                break
            seed = base + index
            plan = KillPlan.drawn(random.Random(f"plan:{seed}"))
            CrashScenario(
                short_dir / f"s{index}", index, seed, KINDS[index % len(KINDS)], plan, stats
            ).run()
    finally:
        _report(stats, tmp_path, started)
    assert stats.total_kills >= MIN_KILLS, stats.kills
    for phase in PHASES:
        assert stats.kills[phase] >= MIN_KILLS_PER_PHASE, (phase, stats.kills)


# -- crash points chosen exactly: the log cut where a SIGKILL between two writes leaves it -----

# A run whose every record is a possible crash point: 22001 is full, its backup 22002 goes out
# in a second POST, and 20456 is dropped in the first.
CUT_PLAN: Final[dict[str, Any]] = {
    "ecrn": ["21234", FULL_CRN],
    "scrn": [DROP_CRN],
    "backup": {FULL_CRN: "22002"},
    "max_attempts": 4,
}
CUT_OUTCOME: Final = {"21234": "success", FULL_CRN: "full", "22002": "success", DROP_CRN: "success"}
# The base run opens late enough for a countdown record before the shot.
CUT_OPENING_IN_S: Final = 4.0
RUN_END_TIMEOUT_S: Final = 40.0
RUN_POLL_S: Final = 0.05


@dataclass(frozen=True, slots=True)
class BaseRun:
    """A finished run's state directory as a SIGKILL after its end left it, and where OBS was."""

    state_dir: Path
    run_id: str
    port: int
    ntp_port: int
    # Cut label (`type#n`, or `state:phase`) -> the seq of that record of the run.
    cuts: dict[str, int]


def _port(address: str) -> int:
    """The port of `host:port` or `scheme://host:port`."""
    return int(address.rsplit(":", 1)[1])


def _cut_labels(events: list[dict[str, Any]], run_id: str) -> dict[str, int]:
    """Label each record of the run (`type#n`, `state:phase`) with its seq."""
    counts: Counter[str] = Counter()
    labels: dict[str, int] = {}
    for event in events:
        if event["payload"].get("run_id") != run_id:
            continue
        kind = event["type"]
        if kind == "state":
            labels[f"state:{event['payload']['phase']}"] = event["seq"]
            continue
        counts[kind] += 1
        labels[f"{kind}#{counts[kind]}"] = event["seq"]
    return labels


def _wait_until_ended(daemon: DaemonProcess, run_id: str) -> dict[str, Any]:
    """Poll the `run` op until the run is done, failed or cancelled."""
    deadline = time.monotonic() + RUN_END_TIMEOUT_S
    while time.monotonic() < deadline:
        with daemon.client() as client:
            run: dict[str, Any] = client.request("run", run_id=run_id)["data"]
        if run["phase"] in TERMINAL:
            return run
        time.sleep(RUN_POLL_S)
    raise AssertionError(f"run {run_id} did not end in {RUN_END_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def base_run() -> Iterator[BaseRun]:
    """Run CUT_PLAN to its end once; keep the state directory as a SIGKILL then left it."""
    workdir = Path(tempfile.mkdtemp(prefix="obsd-cut-", dir="/tmp"))
    try:
        with registration(workdir, opening_in_s=CUT_OPENING_IN_S) as reg:
            reg.plan(**CUT_PLAN)
            run_id = reg.start()
            reg.wait_for("done", timeout_s=RUN_END_TIMEOUT_S)
            reg.daemon.stop(signal.SIGKILL)
            shutil.copytree(workdir / "state", workdir / "base")
            reg.daemon.start()  # `registration` ends with a clean stop
            port, ntp_port = _port(reg.sim.base_url), _port(reg.sim.ntp_server)
        events = read_disk_log(workdir / "base" / "log").events
        yield BaseRun(workdir / "base", run_id, port, ntp_port, _cut_labels(events, run_id))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _cut(label: str) -> Any:
    """A cut point as a test parameter (slow: each resumes a real daemon)."""
    return pytest.param(label, marks=[pytest.mark.slow], id=label)


@pytest.mark.parametrize(
    "cut",
    [
        _cut("run_created#1"),
        _cut("calibration#1"),
        _cut("state:waiting"),
        _cut("countdown#1"),
        _cut("state:registering"),
        _cut("request_armed#1"),
        _cut("crn_update#1"),
        _cut("log#1"),
        _cut("log#2"),
        _cut("request_armed#2"),
        _cut("crn_update#2"),
        _cut("log#3"),
        _cut("done#1"),
    ],
)
def test_a_crash_right_after_any_record_of_a_run_is_survived(
    base_run: BaseRun, short_dir: Path, cut: str
) -> None:
    """Resume from the log cut after `cut`, against a fresh OBS: same outcome, same rules."""
    assert cut in base_run.cuts, f"the base run has no {cut}: {sorted(base_run.cuts)}"
    state = short_dir / "state"
    shutil.copytree(base_run.state_dir, state)
    cut_log_after(state / "log", base_run.cuts[cut])
    config = sim_config(opening_in_s=0)
    with Simulator(config).serve_in_thread(port=base_run.port, ntp_port=base_run.ntp_port) as sim:
        # A fresh simulator signs with a new key: store a token it accepts, as a user would.
        token = state / TOKEN_FILE
        token.write_text(sim.token(STUDENT))
        token.chmod(0o600)
        daemon = DaemonProcess(short_dir / "obsd.sock", state).start()
        try:
            run = _wait_until_ended(daemon, base_run.run_id)
        finally:
            assert daemon.stop() == 0, daemon.stderr()
        posts = [r for r in sim.requests() if r.method == "POST"]
    assert run["phase"] == "done", run["reason"]
    assert {c["crn"]: c["state"] for c in run["crns"]} == CUT_OUTCOME
    assert all(post.arrival_ns >= run["target_ns"] for post in posts)
    assert all(b.arrival_ns - a.arrival_ns >= DEBOUNCE_NS for a, b in itertools.pairwise(posts))
    if cut == "done#1":
        assert posts == [], "a finished run is not resumed"


@dataclass(frozen=True, slots=True)
class LostAnswer:
    """A run whose first answer (a successful drop) was lost to a crash, and what followed."""

    run: dict[str, Any]
    posts: list[RequestRecord]
    registered: list[str]


@pytest.fixture(scope="module")
def lost_drop_answer() -> Iterator[LostAnswer]:
    """OBS processed the first POST (the drop worked), the daemon died before logging it."""
    workdir = Path(tempfile.mkdtemp(prefix="obsd-lost-", dir="/tmp"))
    try:
        with registration(workdir) as reg:
            reg.plan(ecrn=["21234"], scrn=[DROP_CRN])
            run_id = reg.start()
            events = reg.wait_for("crn_update", timeout_s=RUN_END_TIMEOUT_S)
            reg.daemon.stop(signal.SIGKILL)
            sent = events[-2]
            assert sent["type"] == "request_armed", sent
            # As if the kill had come between OBS's answer and the daemon writing it down.
            cut_log_after(workdir / "state" / "log", sent["seq"])
            reg.daemon.start()
            run = _wait_until_ended(reg.daemon, run_id)
            posts = reg.posts()
            (student,) = reg.sim.state().students
        yield LostAnswer(run, posts, student.registered)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_drop_whose_answer_was_lost_is_resent_after_5_s_and_harmless(
    lost_drop_answer: LostAnswer,
) -> None:
    """The daemon cannot know the drop worked: it resends it, spaced as an unknown outcome."""
    first, second = lost_drop_answer.posts
    assert first.body == second.body == {"ECRN": ["21234"], "SCRN": [DROP_CRN]}
    # With its answer lost, all the log knows of the first POST is the instant it was planned
    # for: the second comes 5 s after that. (From the first's arrival it may be a little less:
    # a stalled machine can send the first some ms after its plan.) OBS's window holds either way.
    planned_ns = lost_drop_answer.run["requests"][0]["planned_ns"]
    assert second.arrival_ns >= planned_ns + 5 * NS
    assert second.arrival_ns - first.arrival_ns >= DEBOUNCE_NS
    assert codes(second.response["scrnResultList"]) == {DROP_CRN: "VAL10"}
    assert codes(second.response["ecrnResultList"]) == {"21234": "VAL03"}
    assert lost_drop_answer.registered == ["21234"], "dropped once, added once"
    assert lost_drop_answer.run["phase"] == "done"


def test_a_drop_whose_answer_was_lost_is_reported_as_done(lost_drop_answer: LostAnswer) -> None:
    """OBS did drop the course; the run's record should say so."""
    states = {c["crn"]: c["state"] for c in lost_drop_answer.run["crns"]}
    assert states == {"21234": "already", DROP_CRN: "success"}
