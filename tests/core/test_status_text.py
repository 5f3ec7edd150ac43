"""The status line `systemctl status obsd` shows, and the quiet window around a shot (pure)."""

from __future__ import annotations

import msgspec

from obsd.adapters.eventlog import SegmentDamage
from obsd.core.config import Config
from obsd.core.events import (
    Actor,
    CalibrationPayload,
    CrnResult,
    CrnUpdatePayload,
    DonePayload,
    Event,
    PhaseChangedPayload,
    RequestArmedPayload,
    RunCreatedPayload,
    make_event,
)
from obsd.core.state import DaemonState, apply
from obsd.core.status_text import QUIET_AFTER_S, QUIET_BEFORE_S, in_quiet_window, status_line
from obsd.core.timing import NS
from obsd.core.token import TokenInfo
from tests.core.payloads import calibration
from tests.harness import iso

# 2026-01-15 11:00:00 UTC: 14:00:00 in Istanbul.
TARGET_NS = 1_768_474_800 * NS
ACTOR = Actor(uid=1000, pid=7)
RUN_ID = "0b7e3f5c-6c1e-4c1d-9f0e-2d5b8a7c9e11"


def _fold(*payloads: msgspec.Struct) -> DaemonState:
    state = DaemonState()
    for seq, payload in enumerate(payloads, 1):
        event: Event = make_event(payload, seq, TARGET_NS - 3600 * NS + seq)
        state = apply(state, event)
    return state


def _created() -> RunCreatedPayload:
    config = Config(ecrn=("21234", "22001"), scrn=("20456",), target=iso(TARGET_NS))
    return RunCreatedPayload(RUN_ID, ACTOR, config, TokenInfo(fingerprint="f", exp=None), TARGET_NS)


def _calibrated(fire_at_ns: int) -> CalibrationPayload:
    return calibration(RUN_ID, fire_at_ns)


def _answered(attempt: int) -> CrnUpdatePayload:
    results = [
        CrnResult(crn="21234", kind="ecrn", state="success", code="successResult", message="added"),
        CrnResult(crn="22001", kind="ecrn", state="full", code="VAL06", message="full"),
        CrnResult(
            crn="20456", kind="scrn", state="success", code="successResult", message="dropped"
        ),
    ]
    return CrnUpdatePayload(
        run_id=RUN_ID,
        attempt=attempt,
        outcome="answered",
        http_status=200,
        sent_ns=TARGET_NS,
        responded_ns=TARGET_NS + NS,
        results=results,
    )


def test_status_when_idle() -> None:
    assert status_line(DaemonState(), TARGET_NS) == "idle; no runs yet"


def test_status_while_waiting_counts_down_to_the_fire_instant() -> None:
    fire = TARGET_NS + 5_000_000
    state = _fold(_created(), _calibrated(fire), PhaseChangedPayload(RUN_ID, "waiting"))
    line = status_line(state, TARGET_NS - 754 * NS)
    assert line == (
        f"waiting: fires in 12 min 34 s at 14:00:00 Istanbul; 21234 pending, "
        f"22001 pending, 20456 pending (run {RUN_ID})"
    )
    assert "fires in 3 h 00 min" in status_line(state, TARGET_NS - 3 * 3600 * NS)
    assert "at 2026-01-15 14:00:00 Istanbul" in status_line(state, TARGET_NS - 30 * 3600 * NS)


def test_status_while_registering_shows_each_crn() -> None:
    sent = RequestArmedPayload(RUN_ID, 1, ["21234", "22001"], ["20456"], TARGET_NS)
    state = _fold(
        _created(),
        PhaseChangedPayload(RUN_ID, "waiting"),
        PhaseChangedPayload(RUN_ID, "registering"),
        sent,
    )
    assert "attempt 1 waiting for OBS's answer" in status_line(state, TARGET_NS)
    state = apply(state, make_event(_answered(1), 9, TARGET_NS + NS))
    assert status_line(state, TARGET_NS + NS) == (
        f"registering: attempt 1 answered; 21234 added, 22001 full, 20456 dropped (run {RUN_ID})"
    )


def test_status_after_a_run_gives_its_result() -> None:
    state = _fold(
        _created(),
        PhaseChangedPayload(RUN_ID, "registering"),
        _answered(1),
        DonePayload(RUN_ID, "done", "every CRN has its answer", []),
    )
    assert status_line(state, TARGET_NS + 60 * NS) == (
        f"idle; last run done: 21234 added, 22001 full, 20456 dropped (run {RUN_ID})"
    )
    failed = _fold(_created(), DonePayload(RUN_ID, "failed", "OBS refused the token (401)", []))
    assert (
        "last run failed: 21234 pending, 22001 pending, 20456 pending - OBS refused the "
        "token (401)" in status_line(failed, TARGET_NS)
    )


def test_status_of_a_damaged_log_says_read_only() -> None:
    damage = SegmentDamage(segment="000001.jsonl", offset=10, line=3, reason="bad JSON")
    line = status_line(DaemonState(), TARGET_NS, f"log damaged at {damage.segment}")
    assert line.startswith("read-only: log damaged at 000001.jsonl")


def test_nothing_is_sent_around_a_shot() -> None:
    fire = TARGET_NS + 5_000_000
    state = _fold(_created(), _calibrated(fire), PhaseChangedPayload(RUN_ID, "waiting"))
    assert not in_quiet_window(state, fire - int((QUIET_BEFORE_S + 0.1) * NS))
    assert in_quiet_window(state, fire - int((QUIET_BEFORE_S - 0.1) * NS))
    assert in_quiet_window(state, fire + int((QUIET_AFTER_S - 0.1) * NS))
    assert not in_quiet_window(state, fire + int((QUIET_AFTER_S + 0.1) * NS))
    # A retry is known from its request_armed event, written just before its final wait.
    retry = fire + 4 * NS
    state = apply(state, make_event(RequestArmedPayload(RUN_ID, 2, ["22001"], [], retry), 9, fire))
    assert in_quiet_window(state, retry - NS)
    assert not in_quiet_window(DaemonState(), fire)
