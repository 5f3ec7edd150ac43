"""Crash consistency: SIGKILL the real obsd at chosen points of real runs, restart it, check.

A scenario is one simulator, one state directory and one registration run (sometimes after a
run that is started and cancelled). The daemon runs with the smallest segment size it accepts,
so that the log rotates every few events. Kills are aimed at six phases: right after an
acknowledged command, calibrating, waiting, the firing window (within ±50 ms of a shot's
instant), registering (between attempts) and log rotation. After every kill the harness reads
the segment files itself, restarts the daemon and checks what it replayed; at the end it checks
the simulator's arrival log. Every failure names the scenario and its seed.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import msgspec

from obsctl.client import Client, ClientError
from obsd.core.logformat import segment_first_seq
from obsd.sim import RunningSimulator, SimConfig, Simulator
from obsd.sim.app import REGISTRATION_PATHS, RequestRecord
from tests.conftest import DaemonProcess, wait_until
from tests.harness import NS, STUDENT, iso, sim_config

Event = dict[str, Any]
MS: Final = 1_000_000

# -- what the harness aims at, and why these numbers -------------------------------------------

# The smallest segment the daemon accepts: the log rotates every 10-15 events.
SEGMENT_BYTES: Final = 4096
# The simulator's debounce: two POSTs of one token closer than this draw VAL16.
DEBOUNCE_NS: Final = round(SimConfig().debounce_s * NS)
# Kills aimed at a shot land within this distance of its instant (the firing window).
FIRING_WINDOW_NS: Final = 50 * MS
# Registration opens (the run's target) this long after a scenario starts: room for the
# command kills, a few calibrations, a rotation and a countdown before the first shot.
OPENING_IN_S: Final = 9.0
# "Right after" an acknowledgement: the kill follows the response within this.
ACK_KILL_MAX_DELAY_S: Final = 0.002
# A calibration takes ~0.1 s on loopback (NTP, six HEAD probes, send-delay samples), less on
# a fast machine: each scenario times a `calibrate` op first, and kills aimed at a calibration
# land in the first half of that time after the daemon greets (it may have begun up to 20 ms
# before: DaemonProcess polls for the greeting every 20 ms).
CALIBRATING_KILL_FRACTION: Final = 0.5
# No calibrating kill this close to the target: it would land in the final approach instead.
CALIBRATING_KILL_LEAD_NS: Final = 2 * NS
# The engine writes a shot's request_armed 1 s before its instant; a waiting kill leaves a bit
# more than that, so that it lands while the run is still waiting.
WAITING_KILL_MARGIN_NS: Final = 1200 * MS
MIN_WAITING_ROOM_NS: Final = 100 * MS
# A rotation kill sends configures (~600 bytes each; 4096-byte segments: a rotation within ~7)
# and needs this much time before the shot for them, the restart and a new calibration.
ROTATION_ROOM_NS: Final = 2500 * MS
MAX_ROTATION_CONFIGURES: Final = 16
# The rotation watcher polls the log directory this often: it kills within ~1 ms of the new
# segment file appearing, usually before the event that caused it is fdatasync'ed.
ROTATION_POLL_S: Final = 0.0005
ROTATION_WAIT_S: Final = 5.0
# Kills between attempts land this long after an answer was logged: the next attempt is at
# least 3.5 s later and its request_armed is written 1 s before it.
BETWEEN_ATTEMPTS_S: Final = (0.05, 1.5)
# A shot's kill is planned only if its instant is at least this far away when it is seen.
FIRING_PLAN_LEAD_NS: Final = FIRING_WINDOW_NS + 10 * MS
# OBS's answer delay, drawn per scenario: none, or 30 ms, which puts a POST in flight for
# most of the 50 ms after its instant (real OBS answers in 50-500 ms on opening days).
ANSWER_DELAYS_S: Final = (0.0, 0.03)
# Timed kills sleep to this close to their instant, then spin on the simulator's clock.
SPIN_NS: Final = 2 * MS
# Configure markers: budget_window = MARKER_BASE + n, distinct per configure. The budget (30
# POSTs per window) is far above a run's at most 8 attempts, so a marker changes nothing else.
MARKER_BASE: Final = 1000.0
# The harness reads the log files this often while it waits.
POLL_S: Final = 0.005
COMMAND_TIMEOUT_S: Final = 10.0
# A scenario's run takes ~10-40 s even with every kill's delay; past this something hangs.
SCENARIO_TIMEOUT_S: Final = 150.0
# Kills per scenario, at most: bounds a scenario whatever the dice say.
MAX_KILLS_PER_SCENARIO: Final = 40
# Small pages, so that reading the history through `events` really pages.
EVENTS_PAGE: Final = 100
# A POST matches the request_armed that planned it: it arrives at its planned_ns (true time), give
# or take the clock map's error on loopback.
MATCH_SLACK_NS: Final = 50 * MS
# A killed daemon's connection closes at once; this only bounds a wait that never ends.
SIM_CLOSE_TIMEOUT_S: Final = 10.0

ACK: Final = "ack"
CALIBRATING: Final = "calibrating"
WAITING: Final = "waiting"
FIRING: Final = "firing_window"
REGISTERING: Final = "registering"
ROTATION: Final = "rotation"
PHASES: Final = (ACK, CALIBRATING, WAITING, FIRING, REGISTERING, ROTATION)
# Kills aimed at a phase the log can confirm are counted under the phase the log shows.
OBSERVED_PHASES: Final = frozenset({CALIBRATING, WAITING, REGISTERING})
TERMINAL: Final = frozenset({"done", "failed", "cancelled"})

KINDS: Final = ("retry_full", "backup", "not_open")
FULL_CRN: Final = "22001"
DROP_CRN: Final = "20456"


# -- the log, read from its files ---------------------------------------------------------------


def segment_files(log_dir: Path) -> list[tuple[int, str]]:
    """(first seq, file name) of every segment, in order; `.broken` copies are not segments."""
    if not log_dir.is_dir():
        return []
    return sorted(
        (first, name)
        for name in os.listdir(log_dir)
        if (first := segment_first_seq(name)) is not None
    )


@dataclass(frozen=True, slots=True)
class DiskLog:
    """Every complete record on disk, and the size of a torn last record (0: none)."""

    events: list[Event]
    segments: list[str]
    torn_bytes: int


def read_disk_log(log_dir: Path) -> DiskLog:
    """Read every segment strictly: names chain, seqs run 1, 2, 3..., only the end may tear."""
    events: list[Event] = []
    files = segment_files(log_dir)
    torn = 0
    for index, (first, name) in enumerate(files):
        assert first == len(events) + 1, (
            f"segment {name} starts at seq {first} but {len(events)} records precede it"
        )
        *lines, rest = (log_dir / name).read_bytes().split(b"\n")
        if rest:
            assert index == len(files) - 1, f"{name}: a partial record in a middle segment"
            torn = len(rest)
        for number, line in enumerate(lines, 1):
            event = msgspec.json.decode(line)
            assert event["seq"] == len(events) + 1, (
                f"{name} line {number}: seq {event['seq']} where {len(events) + 1} was due"
            )
            events.append(event)
    return DiskLog(events, [name for _, name in files], torn)


class LogFollower:
    """Reads records as the daemon appends them (complete lines only), across rotations."""

    def __init__(self, log_dir: Path) -> None:
        self._dir = log_dir
        self._first = 0
        self._offset = 0
        self.events: list[Event] = []

    def poll(self) -> None:
        """Read what was appended since the last poll."""
        for first, name in segment_files(self._dir):
            if first < self._first:
                continue
            if first > self._first:
                self._first, self._offset = first, 0
            with open(self._dir / name, "rb") as file:
                file.seek(self._offset)
                data = file.read()
            end = data.rfind(b"\n") + 1
            for line in data[:end].splitlines():
                event = msgspec.json.decode(line)
                assert event["seq"] == len(self.events) + 1, (
                    f"live read of {name}: seq {event['seq']} after {len(self.events)}"
                )
                self.events.append(event)
            self._offset += end


def inject_torn_tail(log_dir: Path, rng: random.Random) -> int:
    """Append the start of a next record, as a write cut short leaves it; return its size."""
    disk = read_disk_log(log_dir)
    assert disk.events and disk.torn_bytes == 0
    following = dict(disk.events[-1], seq=disk.events[-1]["seq"] + 1)
    record = msgspec.json.encode(following)
    partial = record[: rng.randint(1, len(record) - 1)]
    with open(log_dir / disk.segments[-1], "ab") as file:
        file.write(partial)
    return len(partial)


def cut_log_after(log_dir: Path, last_seq: int) -> None:
    """Keep the records up to `last_seq`: the log as a SIGKILL right after that write leaves it."""
    for first, name in segment_files(log_dir):
        path = log_dir / name
        if first > last_seq:
            path.unlink()
            continue
        data = path.read_bytes()
        keep = sum(len(line) for line in data.splitlines(keepends=True)[: last_seq + 1 - first])
        if keep < len(data):
            os.truncate(path, keep)


def of_run(events: list[Event], run_id: str, *types: str) -> list[Event]:
    """The events of `types` whose payload names `run_id`."""
    return [e for e in events if e["type"] in types and e["payload"].get("run_id") == run_id]


def active_run(events: list[Event]) -> str | None:
    """The run the log shows unfinished, if any."""
    active: str | None = None
    for event in events:
        payload = event["payload"]
        if event["type"] == "run_created":
            active = payload["run_id"]
        elif payload.get("run_id") == active and (
            event["type"] in ("done", "run_cancelled")
            or (event["type"] == "state" and payload["phase"] in TERMINAL)
        ):
            active = None
    return active


def observed_phase(events: list[Event], run_id: str | None) -> str:
    """Where the log shows the run: its phase, or calibrating while a driver has not calibrated."""
    if run_id is None:
        return "idle"
    phase, calibrating = "idle", False
    for event in events:
        payload = event["payload"]
        if payload.get("run_id") != run_id:
            continue
        kind = event["type"]
        if kind == "run_created":
            phase, calibrating = CALIBRATING, True
        elif kind == "run_resumed":
            calibrating = True
        elif kind == "calibration":
            calibrating = False
        elif kind == "state":
            phase = payload["phase"]
        elif kind in ("done", "run_cancelled"):
            phase = "after_the_run"
    if phase in TERMINAL:
        return "after_the_run"
    return CALIBRATING if calibrating and phase != "after_the_run" else phase


def codes(results: list[dict[str, Any]]) -> dict[str, str]:
    """CRN -> resultCode of one list of an OBS answer."""
    return {r["crn"]: r["resultCode"] for r in results}


# -- plans and figures --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KillPlan:
    """Which kills a scenario aims for: counts before the first shot, odds per opportunity after."""

    ack_configure: bool
    cancel_first: bool
    ack_cancel: bool
    ack_start: bool
    calibrating: int
    waiting: int
    rotation: int
    firing_first: bool
    registering_p: float
    firing_retry_p: float
    resume_calibrating_p: float
    # Every n-th restart finds a torn record appended to the log (0: never).
    torn_tail_every: int
    # OBS answers this late: a firing-window kill may then land while a POST is in flight
    # (OBS has acted on it, the daemon has not heard), the case only a crash can produce.
    answer_delay_s: float

    @classmethod
    def drawn(cls, rng: random.Random) -> KillPlan:
        """The slow suite's plan: a bit of everything, in varying amounts."""
        return cls(
            ack_configure=rng.random() < 0.7,
            cancel_first=rng.random() < 0.5,
            ack_cancel=rng.random() < 0.8,
            ack_start=rng.random() < 0.7,
            calibrating=rng.randint(1, 2),
            waiting=rng.randint(1, 2),
            rotation=rng.randint(1, 2),
            firing_first=True,
            registering_p=0.9,
            firing_retry_p=0.4,
            resume_calibrating_p=0.2,
            torn_tail_every=rng.randint(4, 7),
            answer_delay_s=rng.choice(ANSWER_DELAYS_S),
        )


# The default suite's plan: one of everything, a torn record at every other restart.
FAST_PLAN: Final = KillPlan(
    ack_configure=True,
    cancel_first=False,
    ack_cancel=False,
    ack_start=False,
    calibrating=1,
    waiting=1,
    rotation=1,
    firing_first=True,
    registering_p=1.0,
    firing_retry_p=0.0,
    resume_calibrating_p=0.0,
    torn_tail_every=2,
    answer_delay_s=0.0,
)


@dataclass
class CrashStats:
    """What a suite did and saw, for the summary."""

    seed: int
    scenarios: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    restarts: int = 0
    resumes: int = 0
    torn_tails_injected: int = 0
    torn_tails_repaired: int = 0
    torn_tails_from_kills: int = 0
    acknowledged: Counter[str] = field(default_factory=Counter)
    runs_completed: int = 0
    runs_cancelled: int = 0
    posts_checked: int = 0
    firing_kills: Counter[str] = field(default_factory=Counter)
    # The earliest and latest firing-window kill, in ms from the shot's instant.
    firing_offsets_ms: tuple[float, float] = (float("inf"), float("-inf"))
    rotation_kill_records_in_new_segment: Counter[int] = field(default_factory=Counter)
    answers_lost_to_kills: int = 0
    drops_resent_after_a_lost_answer: int = 0
    min_post_gap_s: float | None = None
    findings: list[str] = field(default_factory=list)
    scenario_reports: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def total_kills(self) -> int:
        """Every SIGKILL sent."""
        return sum(self.kills.values())

    def summary(self) -> dict[str, Any]:
        """The figures as JSON-ready data."""
        return {
            "seed": self.seed,
            "scenarios": self.scenarios,
            "kills_total": self.total_kills,
            "kills_by_phase": {phase: self.kills[phase] for phase in PHASES}
            | {k: v for k, v in self.kills.items() if k not in PHASES},
            "restarts": self.restarts,
            "run_resumes": self.resumes,
            "torn_tails_injected": self.torn_tails_injected,
            "torn_tails_repaired": self.torn_tails_repaired,
            "torn_tails_from_kills": self.torn_tails_from_kills,
            "acknowledged_commands": dict(self.acknowledged),
            "runs_completed": self.runs_completed,
            "runs_cancelled": self.runs_cancelled,
            "posts_checked": self.posts_checked,
            "firing_kills": dict(self.firing_kills),
            "firing_kill_offsets_ms": [round(x, 3) for x in self.firing_offsets_ms]
            if self.firing_kills
            else None,
            "rotation_kills_by_records_in_new_segment": {
                str(k): v for k, v in sorted(self.rotation_kill_records_in_new_segment.items())
            },
            "answers_lost_to_kills": self.answers_lost_to_kills,
            "drops_resent_after_a_lost_answer": self.drops_resent_after_a_lost_answer,
            "min_post_gap_s": self.min_post_gap_s,
            "findings": self.findings,
            "elapsed_s": round(self.elapsed_s, 1),
            "scenarios_detail": self.scenario_reports,
        }


@dataclass(frozen=True, slots=True)
class Ack:
    """A command whose response said success: its event must be in the log from then on."""

    op: str
    key: str | float


def kind_fields(kind: str, rng: random.Random) -> tuple[dict[str, Any], float]:
    """The plan of a scenario kind, and how long before the real opening its target is."""
    if kind == "retry_full":
        # 22001 stays full: retry_full keeps sending it until max_attempts.
        return {
            "ecrn": ["21234", FULL_CRN],
            "scrn": [DROP_CRN],
            "retry_full": True,
            "max_attempts": rng.randint(5, 7),
        }, 0.0
    if kind == "backup":
        # 22001 is full, its backup 22002 goes out in a second POST; 24020 clashes with 24010.
        return {
            "ecrn": ["21234", FULL_CRN, "24010", "24020"],
            "scrn": [DROP_CRN],
            "backup": {FULL_CRN: "22002"},
            "max_attempts": 8,
        }, 0.0
    assert kind == "not_open"
    # The daemon is told a target 3-6 s before OBS really opens: VAL02 answers, then retries.
    return {
        "ecrn": ["21234", FULL_CRN],
        "scrn": [DROP_CRN],
        "retry_full": True,
        "max_attempts": rng.randint(5, 7),
    }, rng.uniform(3.0, 6.0)


# -- one scenario -------------------------------------------------------------------------------


class CrashScenario:
    """One simulator, one state directory, one run driven to its end through SIGKILLs."""

    def __init__(
        self, workdir: Path, index: int, seed: int, kind: str, plan: KillPlan, stats: CrashStats
    ) -> None:
        self.where = f"scenario {index} (kind {kind}, seed {seed})"
        self.rng = random.Random(seed)
        self.kind = kind
        self.plan = plan
        self.stats = stats
        self.state_dir = workdir / "state"
        self.log_dir = self.state_dir / "log"
        self.daemon = DaemonProcess(
            workdir / "obsd.sock", self.state_dir, ["--segment-bytes", str(SEGMENT_BYTES)]
        )
        self.follower = LogFollower(self.log_dir)
        self.acks: list[Ack] = []
        self.markers = itertools.count()
        self.kills: Counter[str] = Counter()
        self.restarts = 0
        self.run_id: str | None = None
        self.resumed: Counter[str] = Counter()
        self.budget = Counter(
            {CALIBRATING: plan.calibrating, WAITING: plan.waiting, ROTATION: plan.rotation}
        )
        self.firing_first = plan.firing_first
        self.aiming_at_first_shot = False
        self.aiming_at_ns = 0
        self.last_stderr = ""
        self.sim: RunningSimulator
        self.target_ns = 0
        self.max_attempts = 0
        self.final_events: list[Event] = []
        self.calibration_s = 0.0

    # -- the script ------------------------------------------------------------------------

    def run(self) -> None:
        """Drive the scenario and check everything; raise AssertionError naming the seed."""
        started = time.monotonic()
        fields, early_s = kind_fields(self.kind, self.rng)
        self.max_attempts = fields["max_attempts"]
        config = sim_config(OPENING_IN_S + early_s, response_delay_s=self.plan.answer_delay_s)
        assert config.opening_at is not None
        with Simulator(config).serve_in_thread() as sim:
            self.sim = sim
            self.target_ns = round(config.opening_at * NS) - round(early_s * NS)
            try:
                self.daemon.start()
                self._script(fields)
                run = self._finish()
            except BaseException as exc:
                exc.add_note(
                    f"{self.where}; daemon stderr (last incarnation): "
                    f"{self._reap() or self.last_stderr}"
                )
                raise
            finally:
                self._reap()
            self._check_posts(run)
        self.stats.scenarios += 1
        self.stats.scenario_reports.append(
            {
                "seed": self.where,
                "kills": dict(self.kills),
                "restarts": self.restarts,
                "phase": run["phase"],
                "reason": run["reason"],
                "attempts": len(run["requests"]),
                "seconds": round(time.monotonic() - started, 1),
            }
        )

    def _script(self, fields: dict[str, Any]) -> None:
        base = {
            "obs_base_url": self.sim.base_url,
            "ntp_servers": [self.sim.ntp_server],
            "target": iso(self.target_ns),
            "token": self.sim.token(STUDENT),
        }
        self._command(
            "configure",
            self.plan.ack_configure,
            config=base | fields | {"budget_window": self._marker()},
        )
        started = time.monotonic()
        assert self._request("calibrate")["success"]
        self.calibration_s = time.monotonic() - started
        if self.plan.cancel_first:
            first = self._command("start", False)["run_id"]
            self._command("cancel", self.plan.ack_cancel)
            self.stats.runs_cancelled += 1
            assert self._request("run", run_id=first)["data"]["phase"] == "cancelled"
        data = self._command("start", self.plan.ack_start)
        self.run_id = data["run_id"]
        if not self.plan.ack_start and self._calibrating_kill_due(resumed=False):
            self._sleep_into_calibration()
            self._kill_and_restart(CALIBRATING)
        self._follow_run()

    def _follow_run(self) -> None:
        """React to the run's events with kills until it ends."""
        assert self.run_id is not None
        seen = 0
        pending: tuple[str, int] | None = None
        deadline = time.monotonic() + SCENARIO_TIMEOUT_S
        while True:
            assert time.monotonic() < deadline, f"the run did not end in {SCENARIO_TIMEOUT_S} s"
            self._pump()
            events = self.follower.events
            for event in events[seen:]:
                seen += 1
                if event["payload"].get("run_id") != self.run_id:
                    continue
                if active_run(events[:seen]) != self.run_id:
                    return
                if pending is None and self.total_kills < MAX_KILLS_PER_SCENARIO:
                    pending = self._react(event)
                if pending == (ROTATION, 0):
                    pending = None
                    self._rotation_kill()
                    break
            else:
                if pending is not None and self._due(pending[1]):
                    self._kill_and_restart(pending[0])
                    pending = None
                else:
                    time.sleep(POLL_S)

    def _react(self, event: Event) -> tuple[str, int] | None:
        """A kill to plan on seeing `event` of the run: (phase, true-time instant), or None."""
        now = self.sim.true_time_ns()
        payload = event["payload"]
        kind = event["type"]
        shots = of_run(self.follower.events, self.run_id or "", "request_armed")
        states = of_run(self.follower.events, self.run_id or "", "state")
        # Only a calibration written while the run waits (its re-checks) plans these: a run
        # resumed in `registering`, or still calibrating, calibrates too, and a kill aimed
        # from there lands in another phase.
        waiting = bool(states) and states[-1]["payload"]["phase"] == WAITING
        if kind == "calibration" and not shots and waiting and payload["fire_at_ns"] is not None:
            room = payload["fire_at_ns"] - WAITING_KILL_MARGIN_NS - now
            if self.budget[ROTATION] and room > ROTATION_ROOM_NS:
                self.budget[ROTATION] -= 1
                return (ROTATION, 0)
            if self.budget[WAITING] and room > MIN_WAITING_ROOM_NS:
                self.budget[WAITING] -= 1
                return (WAITING, now + self.rng.randint(MIN_WAITING_ROOM_NS // 2, room))
        elif kind == "request_armed":
            # Written 1 s before the shot: time enough to aim at its instant. The first shot's
            # is the calibration's fire_at_ns; a retry's is its planned_ns.
            instant = payload["planned_ns"]
            first = payload["attempt"] == 1 and self.firing_first
            if first:
                self.firing_first = False
                calibrations = of_run(self.follower.events, self.run_id or "", "calibration")
                instant = calibrations[-1]["payload"]["fire_at_ns"] or instant
            wanted = first or self.rng.random() < self.plan.firing_retry_p
            if wanted and instant - now > FIRING_PLAN_LEAD_NS:
                self.aiming_at_first_shot, self.aiming_at_ns = first, instant
                return (FIRING, instant + self.rng.randint(-FIRING_WINDOW_NS, FIRING_WINDOW_NS))
        elif kind == "crn_update":
            if self.budget[ROTATION]:
                self.budget[ROTATION] -= 1
                return (ROTATION, 0)
            if self.rng.random() < self.plan.registering_p:
                low, high = BETWEEN_ATTEMPTS_S
                return (REGISTERING, now + round(self.rng.uniform(low, high) * NS))
        return None

    def _due(self, planned_ns: int) -> bool:
        """Whether a kill planned at `planned_ns` is due; spins the last stretch of a close one."""
        remaining = planned_ns - self.sim.true_time_ns()
        if remaining > POLL_S * NS + SPIN_NS:
            return False
        if remaining > SPIN_NS:
            time.sleep((remaining - SPIN_NS) / NS)
        while self.sim.true_time_ns() < planned_ns:
            pass
        return True

    # -- commands ----------------------------------------------------------------------------

    def _marker(self) -> float:
        """A budget_window no configure of this scenario has used."""
        return MARKER_BASE + next(self.markers)

    def _request(self, op: str, **fields: Any) -> dict[str, Any]:
        """One request on a fresh connection; its response envelope."""
        with Client(self.daemon.socket, timeout=COMMAND_TIMEOUT_S) as client:
            return client.request(op, **fields)

    def _command(self, op: str, kill: bool, **fields: Any) -> dict[str, Any]:
        """Send a command that must succeed and record its acknowledgement; maybe kill after."""
        response = self._request(op, **fields)
        assert response["success"], f"{op} refused: {response}"
        data: dict[str, Any] = response["data"]
        key = fields["config"]["budget_window"] if op == "configure" else data["run_id"]
        self.acks.append(Ack(op, key))
        self.stats.acknowledged[op] += 1
        if kill:
            time.sleep(self.rng.uniform(0, ACK_KILL_MAX_DELAY_S))
            self._kill_and_restart(ACK)
        return data

    # -- kills and restarts --------------------------------------------------------------------

    @property
    def total_kills(self) -> int:
        """Kills so far in this scenario."""
        return sum(self.kills.values())

    def _pump(self) -> None:
        """Read the log files; fail if the daemon died without being killed."""
        self.follower.poll()
        process = self.daemon.process
        assert process is not None
        if process.poll() is not None:
            raise AssertionError(f"obsd exited by itself with status {process.returncode}")

    def _kill_and_restart(self, phase: str) -> None:
        """SIGKILL now, restart, check; again during the resumed calibration if one is due."""
        resumed_from_registering = phase in (REGISTERING, FIRING)
        while True:
            kill_ns = self.sim.true_time_ns()
            process = self.daemon.process
            assert process is not None
            process.send_signal(signal.SIGKILL)
            self._after_kill(phase, kill_ns)
            self._restart()
            if not self._calibrating_kill_due(resumed=resumed_from_registering):
                break
            self._sleep_into_calibration()
            phase = CALIBRATING
        self._verify_online()

    def _after_kill(self, phase: str, kill_ns: int) -> None:
        """Count the kill under the phase it hit (the log says which, where it can)."""
        self._reap()
        self.follower.poll()
        events = self.follower.events
        label = phase
        if phase in OBSERVED_PHASES:
            label = observed_phase(events, self.run_id)
        if phase == FIRING:
            if abs(kill_ns - self.aiming_at_ns) > FIRING_WINDOW_NS:
                # The harness itself was late (a slow restart): count what the log shows.
                self.stats.firing_kills["missed_the_window"] += 1
                label = observed_phase(events, self.run_id)
            else:
                self.stats.firing_kills[self._firing_outcome(events, kill_ns)] += 1
                shot = "first_shot" if self.aiming_at_first_shot else "retry"
                self.stats.firing_kills[shot] += 1
                offset_ms = (kill_ns - self.aiming_at_ns) / MS
                self.stats.firing_offsets_ms = (
                    min(self.stats.firing_offsets_ms[0], offset_ms),
                    max(self.stats.firing_offsets_ms[1], offset_ms),
                )
        self.kills[label] += 1
        self.stats.kills[label] += 1
        if phase == ROTATION:
            newest = segment_files(self.log_dir)[-1][0]
            self.stats.rotation_kill_records_in_new_segment[len(events) + 1 - newest] += 1

    def _firing_outcome(self, events: list[Event], kill_ns: int) -> str:
        """Whether a firing-window kill came before the POST, or after it (answer logged or not)."""
        shots = of_run(events, self.run_id or "", "request_armed")
        if not shots:
            return "before_request_sent"
        # The killed daemon's connection closes once the simulator has read all it sent.
        wait_until(
            lambda: self.sim.open_connections() == 0,
            SIM_CLOSE_TIMEOUT_S,
            "the simulator saw the killed daemon's connection close",
        )
        attempt = shots[-1]["payload"]
        posted = any(
            p.received_ns <= kill_ns and p.arrival_ns >= attempt["planned_ns"] - MATCH_SLACK_NS
            for p in self._posts()
        )
        if not posted:
            return "before_the_post"
        answered = any(
            e["payload"]["attempt"] == attempt["attempt"]
            for e in of_run(events, self.run_id or "", "crn_update")
        )
        return "after_the_answer_was_logged" if answered else "after_the_post_answer_lost"

    def _sleep_into_calibration(self) -> None:
        """Sleep to a random point early in the calibration a driver has just begun."""
        time.sleep(self.rng.uniform(0, CALIBRATING_KILL_FRACTION * self.calibration_s))

    def _calibrating_kill_due(self, *, resumed: bool) -> bool:
        """Whether to kill the daemon again during the calibration it is starting."""
        events = self.follower.events
        if self.run_id is None or active_run(events) != self.run_id:
            return False
        if self.total_kills >= MAX_KILLS_PER_SCENARIO:
            return False
        if not of_run(events, self.run_id, "request_armed"):
            early = self.sim.true_time_ns() < self.target_ns - CALIBRATING_KILL_LEAD_NS
            if self.budget[CALIBRATING] and early:
                self.budget[CALIBRATING] -= 1
                return True
            return False
        return resumed and self.rng.random() < self.plan.resume_calibrating_p

    def _reap(self) -> str:
        """Wait for a stopped daemon (kill it if it is not), keep its stderr, close its pipes."""
        process = self.daemon.process
        if process is None or process.stderr is None or process.stderr.closed:
            return ""
        if process.poll() is None:
            process.kill()
        process.wait(timeout=COMMAND_TIMEOUT_S)
        self.last_stderr = process.stderr.read().decode(errors="replace")[-4000:]
        process.stderr.close()
        if process.stdout is not None:
            process.stdout.close()
        return self.last_stderr

    def _restart(self) -> None:
        """Check the files a kill left, maybe tear the last record, restart, check the replay."""
        disk = read_disk_log(self.log_dir)
        self._check_acks(disk.events)
        torn = disk.torn_bytes
        if torn:
            self.stats.torn_tails_from_kills += 1
        elif self.plan.torn_tail_every and (self.restarts + 1) % self.plan.torn_tail_every == 0:
            torn = inject_torn_tail(self.log_dir, self.rng)
            self.stats.torn_tails_injected += 1
        unfinished = active_run(disk.events)
        self.daemon.start()
        self.restarts += 1
        self.stats.restarts += 1
        self.follower.poll()
        new = self.follower.events[len(disk.events) :]
        if torn:
            repaired = new.pop(0)
            assert repaired["type"] == "log_repaired", f"torn tail not repaired: {repaired}"
            assert repaired["payload"]["removed_bytes"] == torn, repaired
            assert (self.log_dir / repaired["payload"]["broken_copy"]).exists()
            self.stats.torn_tails_repaired += 1
        started = new[0]
        assert started["type"] == "daemon_started", f"after the restart: {new[:3]}"
        assert started["payload"]["replayed_events"] == len(disk.events), (
            f"replayed {started['payload']['replayed_events']} of {len(disk.events)} records"
        )
        resumed = [e for e in new if e["type"] == "run_resumed"]
        if unfinished is None:
            assert not resumed, f"nothing was unfinished, yet {resumed}"
            return
        assert new[1]["type"] == "run_resumed", f"run {unfinished} not resumed: {new[:3]}"
        assert new[1]["payload"]["run_id"] == unfinished
        self.stats.resumes += 1
        self.resumed[unfinished] += 1

    def _verify_online(self) -> None:
        """Ask the restarted daemon: no damage, repairs counted, the whole history by paging."""
        status = self._request("status")
        assert status["success"], status
        log = status["data"]["log"]
        assert log["damage"] is None and log["failure"] is None, log
        paged: list[Event] = []
        while True:
            page = self._request("events", after_seq=len(paged), limit=EVENTS_PAGE)["data"]
            paged.extend(page["items"])
            if not page["has_more"]:
                break
        assert [e["seq"] for e in paged] == list(range(1, len(paged) + 1)), "events op: a gap"
        self.follower.poll()
        known = self.follower.events
        common = min(len(paged), len(known))
        assert paged[:common] == known[:common], "the events op and the files disagree"
        repairs = sum(e["type"] == "log_repaired" for e in paged)
        assert log["repairs"] == repairs, (log, repairs)
        self._check_acks(paged)

    def _check_acks(self, events: list[Event]) -> None:
        """Every acknowledged command's event is in `events`."""
        markers = {
            e["payload"]["config"]["budget_window"] for e in events if e["type"] == "config_changed"
        }
        created = {e["payload"]["run_id"] for e in events if e["type"] == "run_created"}
        ended = {e["payload"]["run_id"] for e in events if e["type"] in ("run_cancelled", "done")}
        for ack in self.acks:
            found = {"configure": markers, "start": created, "cancel": ended}[ack.op]
            assert ack.key in found, f"acknowledged {ack.op} ({ack.key}) is not in the log"

    def _rotation_kill(self) -> None:
        """Send configures until the log rotates; a watcher thread kills the daemon as it does."""
        process = self.daemon.process
        assert process is not None
        before = len(segment_files(self.log_dir))
        fired = threading.Event()
        stop = threading.Event()
        kill_ns: list[int] = []

        def watch() -> None:
            while not stop.is_set():
                if len(segment_files(self.log_dir)) > before:
                    kill_ns.append(self.sim.true_time_ns())
                    process.send_signal(signal.SIGKILL)
                    fired.set()
                    return
                time.sleep(ROTATION_POLL_S)

        watcher = threading.Thread(target=watch, name="rotation-watcher", daemon=True)
        watcher.start()
        try:
            for _ in range(MAX_ROTATION_CONFIGURES):
                if fired.is_set():
                    break
                marker = self._marker()
                try:
                    response = self._request("configure", config={"budget_window": marker})
                except ClientError:
                    break  # killed while the command was in flight: not acknowledged
                assert response["success"], response
                self.acks.append(Ack("configure", marker))
                self.stats.acknowledged["configure"] += 1
            fired.wait(ROTATION_WAIT_S)
        finally:
            stop.set()
            watcher.join(ROTATION_WAIT_S)
        assert fired.is_set(), f"no rotation after {MAX_ROTATION_CONFIGURES} configures"
        self._after_kill(ROTATION, kill_ns[0])
        self._restart()
        self._verify_online()

    # -- the end -------------------------------------------------------------------------------

    def _finish(self) -> dict[str, Any]:
        """Wait for the run's end; stop cleanly; check the run's record and the final files."""
        assert self.run_id is not None
        run: dict[str, Any] = self._request("run", run_id=self.run_id)["data"]
        assert run["phase"] == "done", f"the run ended {run['phase']}: {run['reason']}"
        reason = run["reason"]
        explained = (
            reason.startswith(f"max_attempts ({self.max_attempts}) reached")
            or reason == "every CRN has a final result"
        )
        assert explained, f"unexplained end: {reason}"
        assert run["resumes"] == self.resumed[self.run_id], (run["resumes"], self.resumed)
        assert self.daemon.stop() == 0, "obsd did not stop cleanly after the run"
        disk = read_disk_log(self.log_dir)
        assert disk.torn_bytes == 0 and disk.events[-1]["type"] == "daemon_stopped"
        self._check_acks(disk.events)
        self.final_events = disk.events
        self.stats.runs_completed += 1
        return run

    def _posts(self) -> list[RequestRecord]:
        """Registration POSTs in the order the simulator saw them arrive."""
        return [
            r for r in self.sim.requests() if r.method == "POST" and r.path in REGISTRATION_PATHS
        ]

    def _check_posts(self, run: dict[str, Any]) -> None:
        """The simulator's arrival log: not early, never debounced, no successful drop resent."""
        assert self.run_id is not None
        posts = self._posts()
        events = self.final_events
        target_ns = of_run(events, self.run_id, "run_created")[0]["payload"]["target_ns"]
        shots = [e["payload"] for e in of_run(events, self.run_id, "request_armed")]
        answers = {
            e["payload"]["attempt"]: e["payload"] for e in of_run(events, self.run_id, "crn_update")
        }
        self.stats.posts_checked += len(posts)
        # Kills before a shot use up attempts without a POST: fewer POSTs, never more.
        assert len(posts) <= self.max_attempts, f"{len(posts)} POSTs"
        attempts: list[int] = []
        for number, post in enumerate(posts, 1):
            assert post.arrival_ns >= target_ns, (
                f"POST {number} arrived {(target_ns - post.arrival_ns) / MS:.3f} ms before "
                "the opening"
            )
            ecrn = codes(post.response["ecrnResultList"])
            scrn = codes(post.response["scrnResultList"])
            assert "VAL16" not in {*ecrn.values(), *scrn.values()}, f"POST {number}: VAL16"
            attempts.append(self._match(post, shots, attempts))
            answer = answers.get(attempts[-1])
            if answer is None:
                self.stats.answers_lost_to_kills += 1
            else:
                logged = {r["crn"]: r["code"] for r in answer["results"]}
                assert logged == ecrn | scrn, f"POST {number}: logged {logged}, OBS said so"
        for number, (first, second) in enumerate(itertools.pairwise(posts), 1):
            gap = second.arrival_ns - first.arrival_ns
            assert gap >= DEBOUNCE_NS, f"POSTs {number} and {number + 1} {gap / MS:.1f} ms apart"
            gap_s = gap / NS
            if self.stats.min_post_gap_s is None or gap_s < self.stats.min_post_gap_s:
                self.stats.min_post_gap_s = round(gap_s, 3)
        self._check_drops(posts, attempts, answers, run)

    def _match(self, post: RequestRecord, shots: list[dict[str, Any]], used: list[int]) -> int:
        """The attempt whose request_armed planned this POST (every POST must have one)."""
        candidates = [
            s
            for s in shots
            if s["attempt"] not in used
            and s["planned_ns"] <= post.arrival_ns + MATCH_SLACK_NS
            and [post.body["ECRN"], post.body["SCRN"]] == [s["ecrn"], s["scrn"]]
        ]
        assert candidates, f"a POST with no request_armed before it: {post.body}"
        return int(max(candidates, key=lambda s: s["planned_ns"])["attempt"])

    def _check_drops(
        self,
        posts: list[RequestRecord],
        attempts: list[int],
        answers: dict[int, Any],
        run: dict[str, Any],
    ) -> None:
        """A drop OBS confirmed is never sent again, unless a kill lost that answer."""
        for index, post in enumerate(posts):
            dropped = {
                crn
                for crn, code in codes(post.response["scrnResultList"]).items()
                if code == "successResult"
            }
            for later in posts[index + 1 :]:
                again = dropped & set(later.body["SCRN"])
                if not again:
                    continue
                assert attempts[index] not in answers, (
                    f"drop of {again} sent again although attempt {attempts[index]}'s success "
                    "was in the log"
                )
                state = {c["crn"]: c["state"] for c in run["crns"]}
                self.stats.drops_resent_after_a_lost_answer += 1
                self.stats.findings.append(
                    f"{self.where}: the answer to attempt {attempts[index]} (drop of "
                    f"{sorted(again)}: successResult) was lost to a kill; the drop was sent "
                    f"again, OBS answered {codes(later.response['scrnResultList'])}, the run "
                    f"reports {[state[crn] for crn in sorted(again)]}"
                )
