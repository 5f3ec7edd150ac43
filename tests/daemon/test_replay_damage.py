"""Replay of a damaged log, mutated every way a disk or a hand can: the daemon's part opens
every time, never resumes a run whose last recorded phase was final, and resumes nothing at
all when the log is damaged (so a damaged log can never make it POST)."""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path
from typing import Any

import anyio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from obsd.core.events import (
    EVENT_TYPES,
    Actor,
    ConfigChangedPayload,
    DaemonStartedPayload,
    DaemonStoppedPayload,
    LateStartPayload,
    LoginChangedPayload,
    LoginCheckedPayload,
    LogRepairedPayload,
    OpeningMissedPayload,
    PhaseChangedPayload,
    RequestSentPayload,
    RunCancelledPayload,
    RunCreatedPayload,
    RunDeletedPayload,
    RunInterruptedPayload,
    RunResumedPayload,
    SeatsSeenPayload,
    TokenRefreshedPayload,
    TokenRefreshFailedPayload,
    TokenTestedPayload,
    WatchPlan,
    WatchStalledPayload,
)
from obsd.core.logformat import segment_name
from obsd.core.login import LoginFailure, LoginInfo, LoginStep
from obsd.core.phases import TERMINAL_PHASES, Phase
from obsd.core.token import TokenInfo
from obsd.core.token_refresh import RefreshKind
from obsd.daemon.journal import Journal
from obsd.daemon.lifecycle import _resume
from tests.daemon.scripted import RUN_ID, obs_answer, planned
from tests.fake_clock import FakeClock

# A second run, left waiting: the one a clean replay resumes; a third, cancelled and deleted.
OPEN_RUN = "run-2"
GONE_RUN = "run-3"
WATCH_RUN = "watch-1"
WATCH = WatchPlan(crn="22002", branch="BLG", every_s=60.0)
# Values a mutated field may take: other types, other enum members, unknown names.
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.sampled_from(
        [p.value for p in Phase]
        + ["flying", "success", "VAL02", "log", "done", "run-1", "run-2", "run-3"]
    ),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@functools.cache
def valid_log() -> tuple[bytes, ...]:
    """The lines of a real log: a run driven to its end (VAL02, then success), and an open one."""

    async def build(directory: Path) -> None:
        answers = [obs_answer({"21234": "VAL02"}), obs_answer({"21234": "successResult"})]
        drive = await planned(directory, answers, wait_s=4.0, retry_interval=3.5)
        await drive.to_the_end()
        plan = drive.run.config
        info = TokenInfo(fingerprint="sha256:x", exp=None)
        journal, actor = drive.journal, Actor(0, 1)
        target = drive.target_ns + 3600 * 10**9
        # One of every event type the daemon writes (or wrote: request_sent is 0.1's
        # request_armed), around a cancelled and deleted run.
        for payload in [
            DaemonStoppedPayload("received SIGTERM"),
            LogRepairedPayload("00000000000000000001.jsonl", 10, 3, "x.broken"),
            DaemonStartedPayload("0.1.0", 2, 30),
            ConfigChangedPayload(actor, ["max_attempts"], plan),
            TokenTestedPayload(token=info, valid=True, http_status=200, message="ok"),
            LoginChangedPayload(actor=actor, login=LoginInfo(configured=True, username="ayse")),
            LoginCheckedPayload(
                ok=False,
                code=LoginFailure.WRONG_PASSWORD,
                message="İTÜ refused the user name or password",
                identity=None,
                identities=[],
                steps=[LoginStep("login page", "GET", "https://sso.test/Login.aspx", 200, 1)],
                token=None,
                http_status=None,
            ),
            RunCreatedPayload(GONE_RUN, actor, plan, info, target),
            LateStartPayload(GONE_RUN, 130.5),
            RunCancelledPayload(GONE_RUN, actor, Phase.CALIBRATING),
            RunDeletedPayload(GONE_RUN, actor),
            RunCreatedPayload(WATCH_RUN, actor, plan, info, target, WATCH),
            SeatsSeenPayload(run_id=WATCH_RUN, quota=40, enrolled=40, at_ns=target),
            WatchStalledPayload(
                run_id=WATCH_RUN, cause="page", reason="the page is unreadable", since_ns=0
            ),
            RunCancelledPayload(WATCH_RUN, actor, Phase.WATCHING),
            RunCreatedPayload(OPEN_RUN, actor, plan, info, target),
            PhaseChangedPayload(OPEN_RUN, Phase.WAITING),
            TokenRefreshedPayload(
                run_id=OPEN_RUN,
                kind=RefreshKind.LOGIN,
                at_ns=target - 1800 * 10**9,
                token=info,
                identity=None,
                steps=[],
            ),
            TokenRefreshFailedPayload(
                run_id=OPEN_RUN,
                kind=RefreshKind.REMINT,
                at_ns=target - 600 * 10**9,
                code=LoginFailure.SESSION_EXPIRED,
                message="the session has expired: a full login is needed",
                steps=[],
                kept=info,
            ),
            RunInterruptedPayload(OPEN_RUN, Phase.WAITING, "received SIGTERM"),
            RunResumedPayload(OPEN_RUN, Phase.WAITING, ["21234"], None),
            OpeningMissedPayload(OPEN_RUN, 45.1),
            RequestSentPayload(OPEN_RUN, 1, ["21234"], [], target),
        ]:
            await journal.append(payload)

    directory = Path(tempfile.mkdtemp(prefix="obsd-replay-"))
    anyio.run(build, directory)
    (segment,) = directory.glob("*.jsonl")
    return tuple(segment.read_bytes().splitlines(keepends=True))


class FakeRunner:
    """Records which runs a resume would start."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def start(self, run_id: str) -> None:
        self.started.append(run_id)


@functools.cache
def values_by_key() -> dict[str, list[Any]]:
    """Every value each key takes somewhere in the valid log (what a mix-up would write)."""
    seen: dict[str, list[Any]] = {}

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            if isinstance(key, str) and child not in seen.setdefault(key, []):
                seen[key].append(child)
            if isinstance(child, dict | list):
                walk(child)

    for line in valid_log():
        walk(json.loads(line))
    return seen


def mutate_field(data: st.DataObject, line: bytes) -> bytes:
    """One field somewhere in the record, set to an odd value or one it has elsewhere."""
    record = json.loads(line)
    payload = record.get("payload")
    node: Any = payload if isinstance(payload, dict) and data.draw(st.booleans()) else record
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        key = data.draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, dict | list) and child and data.draw(st.booleans()):
            node = child
            continue
        elsewhere = values_by_key().get(key) if isinstance(key, str) else None
        if elsewhere and data.draw(st.booleans()):
            node[key] = data.draw(st.sampled_from(elsewhere))
        else:
            node[key] = data.draw(ODD_VALUES)
        break
    return json.dumps(record).encode() + b"\n"


def mix_up(data: st.DataObject, line: bytes) -> bytes:
    """One payload field given a value it has in another record (another run's id, say)."""
    record = json.loads(line)
    payload = record.get("payload")
    keys = sorted(k for k in payload if k in values_by_key()) if isinstance(payload, dict) else []
    if not keys:
        return line
    # A record of one run under another's id is the mix-up that matters most: half of them.
    run_id = "run_id" in keys and data.draw(st.booleans())
    key = "run_id" if run_id else data.draw(st.sampled_from(keys))
    payload[key] = data.draw(st.sampled_from(values_by_key()[key]))
    return json.dumps(record).encode() + b"\n"


def mutated(data: st.DataObject, lines: list[bytes]) -> bytes:
    """One to three mutations (a field, a mix-up, a swap, a duplicate, a deletion), maybe a cut."""
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(st.sampled_from(["field", "mix-up", "swap", "duplicate", "delete"]))
        i = data.draw(st.sampled_from(range(len(lines))))
        if kind == "field":
            lines[i] = mutate_field(data, lines[i])
        elif kind == "mix-up":
            lines[i] = mix_up(data, lines[i])
        elif kind == "swap":
            j = data.draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "duplicate":
            lines.insert(data.draw(st.integers(0, len(lines))), lines[i])
        elif len(lines) > 1:
            del lines[i]
    raw = b"".join(lines)
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    return raw


def last_phases(raw: bytes) -> dict[str, str]:
    """Each run's last recorded phase (state, done, run_cancelled), read as plain JSON."""
    phases: dict[str, str] = {}
    for line in raw.splitlines():
        record = json.loads(line)
        payload = record["payload"]
        if record["type"] == "run_created":
            # A second record of a run does not undo how its last phase record left it.
            phases.setdefault(payload["run_id"], Phase.CALIBRATING)
        elif record["type"] in ("state", "done"):
            phases[payload["run_id"]] = payload["phase"]
        elif record["type"] == "run_cancelled":
            phases[payload["run_id"]] = Phase.CANCELLED
    return phases


def test_the_valid_log_has_every_event_type() -> None:
    assert {json.loads(line)["type"] for line in valid_log()} == EVENT_TYPES


def test_the_valid_log_resumes_only_its_open_run(tmp_path: Path) -> None:
    (tmp_path / segment_name(1)).write_bytes(b"".join(valid_log()))
    journal = Journal.open(tmp_path, FakeClock())
    runner = FakeRunner()
    anyio.run(_resume, journal, runner)
    assert journal.log.damage is None and runner.started == [OPEN_RUN]
    assert journal.state.runs[RUN_ID].phase == Phase.DONE


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_a_mutated_log_opens_and_never_resumes_what_it_must_not(
    tmp_path: Path, data: st.DataObject
) -> None:
    raw = mutated(data, list(valid_log()))
    for old in tmp_path.iterdir():
        old.unlink()
    (tmp_path / segment_name(1)).write_bytes(raw)
    journal = Journal.open(tmp_path, FakeClock())  # never raises
    runner = FakeRunner()
    anyio.run(_resume, journal, runner)
    event(f"damaged: {journal.log.damage is not None}; resumed: {runner.started}")
    if journal.log.damage is not None:
        assert runner.started == [], "a damaged log resumes nothing"
        return
    # Undamaged: every record now in the file was replayed (a torn tail is cut off first).
    phases = last_phases((tmp_path / segment_name(1)).read_bytes())
    for run_id in runner.started:
        assert phases[run_id] not in TERMINAL_PHASES, (run_id, phases)
        assert journal.state.runs[run_id].phase not in TERMINAL_PHASES
