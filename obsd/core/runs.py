"""A registration run: its phases (one transition table), and its record as a fold of events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from obsd.core.config import Config
from obsd.core.events import (
    Actor,
    CalibrationPayload,
    CrnResult,
    CrnUpdatePayload,
    DonePayload,
    LateStartPayload,
    OpeningMissedPayload,
    PhaseChangedPayload,
    RequestArmedPayload,
    RunCreatedPayload,
    SeatsSeenPayload,
    WatchPlan,
)
from obsd.core.phases import TERMINAL_PHASES, Phase
from obsd.core.results import LOST_DROP_CODE, CrnKind, CrnState, Outcome
from obsd.core.timing import NS, epoch_ns
from obsd.core.token import TokenInfo
from obsd.core.token_refresh import RefreshRecord


class CrnStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One CRN of a run: its latest state and how often it was sent."""

    crn: str
    kind: CrnKind
    state: CrnState = CrnState.PENDING
    code: str | None = None
    message: str = "not sent yet"
    result_data: Any = None
    attempts: int = 0
    transient_results: int = 0
    # Set on a backup CRN: the full primary it stands in for.
    backup_for: str | None = None


class RequestRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One registration POST of a run and what became of it."""

    attempt: int
    ecrn: list[str]
    scrn: list[str]
    planned_ns: int
    outcome: Outcome | None = None  # None while no answer is known
    http_status: int | None = None
    sent_ns: int | None = None
    responded_ns: int | None = None
    codes: dict[str, str | None] = msgspec.field(default_factory=dict)


class RunState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the log says about one run."""

    run_id: str
    created_at: str
    actor: Actor
    config: Config
    token: TokenInfo | None  # the token at `start`; None: the run was to log in for one
    target_ns: int
    phase: Phase = Phase.CALIBRATING
    reason: str | None = None
    finished_at: str | None = None
    calibration: CalibrationPayload | None = None
    crns: tuple[CrnStatus, ...] = ()
    requests: tuple[RequestRecord, ...] = ()
    resumes: int = 0
    # Set when the run fires after its target: started late, or the opening was missed.
    late_by_s: float | None = None
    opening_missed: bool = False
    # The logins and re-mints a waiting run made for a fresh token (core/token_refresh.py).
    refreshes: tuple[RefreshRecord, ...] = ()
    # A watch run's plan, the seats it last saw, and why it is stalled now, by cause.
    watch: WatchPlan | None = None
    seats: SeatsSeenPayload | None = None
    stalls: dict[str, str] = msgspec.field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Not yet done, cancelled or failed."""
        return self.phase not in TERMINAL_PHASES


def new_run(payload: RunCreatedPayload, created_at: str) -> RunState:
    """The record of a run as `start` created it: every CRN pending."""
    crns = tuple(CrnStatus(crn=crn, kind=CrnKind.ECRN) for crn in payload.config.ecrn) + tuple(
        CrnStatus(crn=crn, kind=CrnKind.SCRN) for crn in payload.config.scrn
    )
    return RunState(
        run_id=payload.run_id,
        created_at=created_at,
        actor=payload.actor,
        config=payload.config,
        token=payload.token,
        target_ns=payload.target_ns,
        crns=crns,
        watch=payload.watch,
        phase=Phase.CALIBRATING if payload.watch is None else Phase.WATCHING,
    )


def with_request(run: RunState, sent: RequestArmedPayload) -> RunState:
    """A POST is leaving: count it for the CRNs it carries."""
    included = set(sent.ecrn) | set(sent.scrn)
    crns = tuple(
        msgspec.structs.replace(c, attempts=c.attempts + 1) if c.crn in included else c
        for c in run.crns
    )
    record = RequestRecord(
        attempt=sent.attempt, ecrn=sent.ecrn, scrn=sent.scrn, planned_ns=sent.planned_ns
    )
    return msgspec.structs.replace(run, crns=crns, requests=(*run.requests, record))


def with_results(run: RunState, update: CrnUpdatePayload) -> RunState:
    """Apply an answer: new CRN states, and a backup stepping in for a full primary."""
    # Drops sent in an attempt whose answer never came may have happened: OBS then answers
    # VAL10 (not registered), which proves it, as VAL03 proves an add (obs-facts.md).
    maybe_dropped = {
        crn
        for record in run.requests
        if record.attempt < update.attempt and record.outcome != Outcome.ANSWERED
        for crn in record.scrn
    }
    by_crn = {result.crn: _lost_drop_proven(result, maybe_dropped) for result in update.results}
    crns = [_updated(status, by_crn.get(status.crn)) for status in run.crns]
    present = {status.crn for status in crns}
    for status in list(crns):
        backup = run.config.backup.get(status.crn)
        if status.state == CrnState.FULL and backup and backup not in present:
            crns.append(CrnStatus(crn=backup, kind=CrnKind.ECRN, backup_for=status.crn))
            present.add(backup)
    requests = tuple(
        msgspec.structs.replace(
            record,
            outcome=update.outcome,
            http_status=update.http_status,
            sent_ns=update.sent_ns,
            responded_ns=update.responded_ns,
            codes={r.crn: r.code for r in update.results},
        )
        if record.attempt == update.attempt
        else record
        for record in run.requests
    )
    return msgspec.structs.replace(run, crns=tuple(crns), requests=requests)


def _lost_drop_proven(result: CrnResult, maybe_dropped: set[str]) -> CrnResult:
    if (
        result.kind != CrnKind.SCRN
        or result.code != LOST_DROP_CODE
        or result.crn not in maybe_dropped
    ):
        return result
    return msgspec.structs.replace(
        result,
        state=CrnState.SUCCESS,
        message="dropped (by an earlier attempt whose answer was lost; OBS now answers VAL10)",
    )


def _updated(status: CrnStatus, result: CrnResult | None) -> CrnStatus:
    if result is None:
        return status
    state = result.state
    return msgspec.structs.replace(
        status,
        state=state,
        code=result.code,
        message=result.message,
        result_data=result.result_data,
        transient_results=status.transient_results + (state == CrnState.TRANSIENT),
    )


def finished(run: RunState, done: DonePayload, finished_at: str) -> RunState:
    """The run ended. Its CRN states already came with each answer; `done` summarises them."""
    return msgspec.structs.replace(
        run, phase=done.phase, reason=done.reason, finished_at=finished_at
    )


def lateness(run: RunState, true_now_ns: int) -> LateStartPayload | OpeningMissedPayload | None:
    """What a run about to make its first shot at `true_now_ns` records if it is late (9.9)."""
    late_ns = true_now_ns - run.target_ns
    if late_ns <= 0 or run.late_by_s is not None:
        return None
    # Created before its target but firing after it: the daemon was down at the opening.
    missed = epoch_ns(datetime.fromisoformat(run.created_at)) < run.target_ns
    kind = OpeningMissedPayload if missed else LateStartPayload
    return kind(run.run_id, round(late_ns / NS, 3))


# What a shot writes when the log cannot take it: kept in the spare record for the next start.
KeptAside = PhaseChangedPayload | RequestArmedPayload | CrnUpdatePayload


def already_recorded(run: RunState, payload: KeptAside) -> bool:
    """Whether the run's record already holds this request, answer or phase (kept aside)."""
    if isinstance(payload, RequestArmedPayload):
        return payload.attempt <= len(run.requests)
    if isinstance(payload, CrnUpdatePayload):
        done = [r for r in run.requests if r.attempt == payload.attempt and r.outcome is not None]
        return bool(done)
    return run.phase == payload.phase


def crn_results(run: RunState) -> list[CrnResult]:
    """Every CRN's latest result, in the order of the plan."""
    return [
        CrnResult(
            crn=c.crn,
            kind=c.kind,
            state=c.state,
            code=c.code,
            message=c.message,
            result_data=c.result_data,
        )
        for c in run.crns
    ]


class RunSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One line of the run history."""

    run_id: str
    phase: Phase
    reason: str | None
    created_at: str
    finished_at: str | None
    target: str | None
    attempts: int
    crns: dict[str, CrnState]
    # Fired after its target (9.9): how late it found itself, and whether the daemon was down.
    late_by_s: float | None = None
    opening_missed: bool = False
    # A watch run: the section it waits for a seat in (its CRN is in `crns` too).
    watch: WatchPlan | None = None


def summary(run: RunState) -> RunSummary:
    """The run as the history lists it."""
    return RunSummary(
        run_id=run.run_id,
        phase=run.phase,
        reason=run.reason,
        created_at=run.created_at,
        finished_at=run.finished_at,
        target=run.config.target,
        attempts=len(run.requests),
        crns={c.crn: c.state for c in run.crns},
        late_by_s=run.late_by_s,
        opening_missed=run.opening_missed,
        watch=run.watch,
    )


class RunDurations(msgspec.Struct, frozen=True, kw_only=True):
    """How long things took, in the units people read them in."""

    first_post_after_target_ms: float | None
    first_answer_ms: float | None
    total_s: float | None


def durations(run: RunState) -> RunDurations:
    """From the target to the first POST, the first answer's wait, and the whole run."""
    first = run.requests[0] if run.requests else None
    created = datetime.fromisoformat(run.created_at)
    ended = datetime.fromisoformat(run.finished_at) if run.finished_at else None
    sent = first.sent_ns if first else None
    responded = first.responded_ns if first else None
    # A watch has no target: its POSTs follow the page, not an instant.
    timed = run.watch is None
    return RunDurations(
        first_post_after_target_ms=(sent - run.target_ns) / 1e6 if sent and timed else None,
        first_answer_ms=(responded - sent) / 1e6 if sent and responded else None,
        total_s=(ended - created).total_seconds() if ended else None,
    )
