"""A run's record is the fold of its events; phases move only as the table allows."""

from functools import reduce

import msgspec
import pytest

from obsd.core.config import Config
from obsd.core.events import (
    Actor,
    CrnResult,
    CrnUpdatePayload,
    DonePayload,
    Event,
    PhaseChangedPayload,
    RequestArmedPayload,
    RunCancelledPayload,
    RunCreatedPayload,
    RunDeletedPayload,
    RunResumedPayload,
    encode_event,
    event_decoder,
    make_event,
)
from obsd.core.phases import Phase
from obsd.core.state import DaemonState, ImpossibleEvent, apply
from obsd.core.timing import NS
from obsd.core.token import TokenInfo

ACTOR = Actor(uid=1000, pid=7)
CONFIG = Config(ecrn=("11111", "22222"), scrn=("33333",), backup={"22222": "44444"})


def fold(*payloads: msgspec.Struct) -> DaemonState:
    """Fold the payloads as the log would replay them: written, then read back."""
    events: list[Event] = [
        event_decoder.decode(encode_event(make_event(p, seq, seq * NS)))
        for seq, p in enumerate(payloads, 1)
    ]
    return reduce(apply, events, DaemonState())


def created(run_id: str = "r1") -> RunCreatedPayload:
    return RunCreatedPayload(run_id, ACTOR, CONFIG, TokenInfo(fingerprint="f", exp=None), 0)


def result(crn: str, state: str, code: str, kind: str = "ecrn") -> CrnResult:
    return CrnResult(crn=crn, kind=kind, state=state, code=code, message=code)


def test_a_new_run_is_active_with_every_crn_pending() -> None:
    state = fold(created())
    run = state.runs["r1"]
    assert state.active_run == "r1" and state.phase is Phase.CALIBRATING
    assert [(c.crn, c.kind, c.state) for c in run.crns] == [
        ("11111", "ecrn", "pending"),
        ("22222", "ecrn", "pending"),
        ("33333", "scrn", "pending"),
    ]


def test_requests_and_answers_update_the_crns_and_bring_in_a_backup() -> None:
    state = fold(
        created(),
        PhaseChangedPayload("r1", "waiting"),
        PhaseChangedPayload("r1", "registering"),
        RequestArmedPayload("r1", 1, ["11111", "22222"], ["33333"], 5 * NS),
        CrnUpdatePayload(
            run_id="r1",
            attempt=1,
            outcome="answered",
            http_status=200,
            sent_ns=5 * NS,
            responded_ns=6 * NS,
            results=[
                result("11111", "success", "successResult"),
                result("22222", "full", "VAL06"),
                result("33333", "success", "successResult", "scrn"),
            ],
        ),
    )
    run = state.runs["r1"]
    assert {c.crn: c.state for c in run.crns} == {
        "11111": "success",
        "22222": "full",
        "33333": "success",
        "44444": "pending",
    }
    assert run.crns[-1].backup_for == "22222"
    assert all(c.attempts == 1 for c in run.crns[:3])
    (record,) = run.requests
    assert (record.outcome, record.responded_ns, record.codes["22222"]) == (
        "answered",
        6 * NS,
        "VAL06",
    )


def test_done_ends_the_run_and_frees_the_daemon() -> None:
    state = fold(
        created(),
        PhaseChangedPayload("r1", Phase.WAITING),
        PhaseChangedPayload("r1", Phase.REGISTERING),
        DonePayload("r1", Phase.DONE, "every CRN has a final result", []),
    )
    assert state.active_run is None and state.phase is Phase.IDLE
    assert state.runs["r1"].phase is Phase.DONE and state.runs["r1"].finished_at


def test_cancel_resume_and_delete() -> None:
    state = fold(
        created(),
        RunResumedPayload("r1", "calibrating", ["11111"], None),
        RunCancelledPayload("r1", ACTOR, "calibrating"),
    )
    assert state.runs["r1"].phase is Phase.CANCELLED and state.runs["r1"].resumes == 1
    assert state.active_run is None
    deleted = apply(state, make_event(RunDeletedPayload("r1", ACTOR), 9, 9 * NS))
    assert deleted.runs == {}


def test_not_registered_after_a_lost_drop_answer_proves_the_drop() -> None:
    state = fold(
        created(),
        PhaseChangedPayload("r1", "waiting"),
        PhaseChangedPayload("r1", "registering"),
        RequestArmedPayload("r1", 1, ["11111"], ["33333"], 5 * NS),
        CrnUpdatePayload(
            run_id="r1",
            attempt=1,
            outcome="unknown",
            http_status=None,
            sent_ns=5 * NS,
            responded_ns=35 * NS,
            results=[],
        ),
        RequestArmedPayload("r1", 2, ["11111"], ["33333"], 40 * NS),
        CrnUpdatePayload(
            run_id="r1",
            attempt=2,
            outcome="answered",
            http_status=200,
            sent_ns=40 * NS,
            responded_ns=41 * NS,
            results=[
                result("11111", "already", "VAL03"),
                result("33333", "rejected", "VAL10", "scrn"),
            ],
        ),
    )
    states = {c.crn: c.state for c in state.runs["r1"].crns}
    assert states["33333"] == "success" and states["11111"] == "already"


def test_not_registered_without_a_lost_answer_stays_a_refusal() -> None:
    state = fold(
        created(),
        RequestArmedPayload("r1", 1, [], ["33333"], 5 * NS),
        CrnUpdatePayload(
            run_id="r1",
            attempt=1,
            outcome="answered",
            http_status=200,
            sent_ns=5 * NS,
            responded_ns=6 * NS,
            results=[result("33333", "rejected", "VAL10", "scrn")],
        ),
    )
    assert {c.crn: c.state for c in state.runs["r1"].crns}["33333"] == "rejected"


@pytest.mark.parametrize(
    "impossible",
    [
        DonePayload("r1", Phase.DONE, "done without registering", []),
        PhaseChangedPayload("r1", Phase.IDLE),
    ],
)
def test_the_fold_refuses_a_move_the_phase_table_does_not_allow(impossible: msgspec.Struct) -> None:
    with pytest.raises(ImpossibleEvent, match="cannot move from calibrating"):
        fold(created(), impossible)


def test_nothing_happens_to_a_run_after_it_ended() -> None:
    with pytest.raises(ImpossibleEvent, match="has already ended"):
        fold(
            created(),
            RunCancelledPayload("r1", ACTOR, Phase.CALIBRATING),
            PhaseChangedPayload("r1", Phase.REGISTERING),
        )
