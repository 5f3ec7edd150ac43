"""The state is a pure fold of events."""

from functools import reduce

import pytest

from obsd.core.config import Config
from obsd.core.events import (
    Actor,
    ConfigChangedPayload,
    DaemonStartedPayload,
    DaemonStoppedPayload,
    Event,
    LateStartPayload,
    LogCreatedPayload,
    LogRepairedPayload,
    OpeningMissedPayload,
    PhaseChangedPayload,
    RequestArmedPayload,
    RequestSentPayload,
    RunCancelledPayload,
    RunCreatedPayload,
    RunDeletedPayload,
    make_event,
)
from obsd.core.phases import Phase
from obsd.core.state import DaemonState, ImpossibleEvent, apply
from obsd.core.token import TokenInfo

ACTOR = Actor(uid=1000, pid=42)


def events(*payloads: object) -> list[Event]:
    return [
        make_event(p, seq, 1_770_000_000_000_000_000 + seq)
        for seq, p in enumerate(payloads, start=1)  # type: ignore[arg-type]
    ]


def fold(history: list[Event]) -> DaemonState:
    return reduce(apply, history, DaemonState())


def test_the_log_lineage_comes_from_the_first_event() -> None:
    state = fold(events(LogCreatedPayload(log_id="L1", server="0.1.0")))
    assert state.log_id == "L1" and state.phase == "idle"


def test_the_last_configuration_wins() -> None:
    first = Config(ecrn=("11111",))
    second = Config(ecrn=("22222",), max_attempts=5)
    state = fold(
        events(
            LogCreatedPayload(log_id="L1", server="0.1.0"),
            ConfigChangedPayload(actor=ACTOR, changed=["ecrn"], config=first),
            ConfigChangedPayload(actor=ACTOR, changed=["ecrn", "max_attempts"], config=second),
        )
    )
    assert state.config == second


def test_starts_and_repairs_are_counted() -> None:
    history = events(
        LogCreatedPayload(log_id="L1", server="0.1.0"),
        DaemonStartedPayload(server="0.1.0", pid=1, replayed_events=1),
        DaemonStoppedPayload(reason="received SIGTERM"),
        LogRepairedPayload(segment="s", truncated_at=10, removed_bytes=3, broken_copy="s.broken"),
        DaemonStartedPayload(server="0.1.0", pid=2, replayed_events=4),
    )
    state = fold(history)
    assert (state.starts, state.repairs, state.last_start) == (2, 1, history[-1].timestamp)


def test_events_that_change_nothing_return_the_same_state() -> None:
    state = DaemonState()
    stopped = events(DaemonStoppedPayload(reason="x"))[0]
    assert apply(state, stopped) is state


def test_apply_does_not_mutate_its_input() -> None:
    before = DaemonState()
    apply(before, events(LogCreatedPayload(log_id="L1", server="0.1.0"))[0])
    assert before == DaemonState()


def created(run_id: str) -> RunCreatedPayload:
    return RunCreatedPayload(run_id, ACTOR, Config(), TokenInfo(fingerprint="f", exp=None), 0)


@pytest.mark.parametrize(
    ("history", "why"),
    [
        (
            [created("r1"), RunCancelledPayload("r1", ACTOR, Phase.CALIBRATING), created("r1")],
            "exists already",
        ),
        ([created("r1"), created("r2")], "run r1 is still active"),
        ([PhaseChangedPayload("r9", Phase.REGISTERING)], "no run r9"),
        ([RunDeletedPayload("r9", ACTOR)], "no run r9"),
        ([created("r1"), RunDeletedPayload("r1", ACTOR)], "has not ended"),
        (
            [
                created("r1"),
                RunCancelledPayload("r1", ACTOR, Phase.CALIBRATING),
                RunDeletedPayload("r1", ACTOR),
                PhaseChangedPayload("r1", Phase.REGISTERING),
            ],
            "no run r1",
        ),
        (
            [
                created("r1"),
                RequestArmedPayload("r1", 1, ["21234"], [], 5),
                LateStartPayload("r1", 2.0),
            ],
            "has sent already",
        ),
        (
            [created("r1"), LateStartPayload("r1", 2.0), OpeningMissedPayload("r1", 3.0)],
            "was found late already",
        ),
    ],
    ids=[
        "created-twice",
        "two-at-once",
        "unknown-run",
        "delete-unknown",
        "delete-live",
        "after-delete",
        "late-after-a-post",
        "late-twice",
    ],
)
def test_a_run_event_the_runs_do_not_allow_is_impossible(history: list[object], why: str) -> None:
    """Each of these would let a replay resume a run that must not be, or lose one."""
    with pytest.raises(ImpossibleEvent, match=why):
        fold(events(*history))


def test_a_late_run_keeps_how_late_and_why() -> None:
    late = fold(events(created("r1"), LateStartPayload("r1", 130.5))).runs["r1"]
    assert (late.late_by_s, late.opening_missed) == (130.5, False)
    missed = fold(events(created("r1"), OpeningMissedPayload("r1", 45.1))).runs["r1"]
    assert (missed.late_by_s, missed.opening_missed) == (45.1, True)


def test_a_log_from_0_1_replays_its_request_sent_as_request_armed() -> None:
    legacy = fold(events(created("r1"), RequestSentPayload("r1", 1, ["21234"], ["20456"], 5)))
    armed = fold(events(created("r1"), RequestArmedPayload("r1", 1, ["21234"], ["20456"], 5)))
    assert legacy.runs["r1"] == armed.runs["r1"]
    assert legacy.runs["r1"].requests[0].planned_ns == 5
