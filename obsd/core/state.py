"""The daemon's state as a pure fold of its event log: `apply(state, event) -> state`."""

from __future__ import annotations

import msgspec

from obsd.core.config import Config
from obsd.core.events import (
    Calibration,
    CalibrationPayload,
    ConfigChanged,
    CrnUpdate,
    DaemonStarted,
    Done,
    Event,
    LateStart,
    LogCreated,
    LogRepaired,
    OpeningMissed,
    PhaseChanged,
    RequestArmed,
    RequestSent,
    RunCancelled,
    RunCreated,
    RunDeleted,
    RunResumed,
    SeatsSeen,
    TokenRefreshed,
    TokenRefreshFailed,
    WatchStalled,
)
from obsd.core.logformat import RecordRefused
from obsd.core.login import LoginFailure
from obsd.core.phases import WATCH_PHASES, Phase, can_move
from obsd.core.runs import RequestRecord, RunState, finished, new_run, with_request, with_results
from obsd.core.token_refresh import RefreshRecord


class ImpossibleEvent(RecordRefused):
    """An event the run's phase table does not allow: it is never applied (nor written)."""


class DaemonState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the log says about the daemon, as of the last applied event."""

    log_id: str | None = None
    config: Config = Config()
    # How often the daemon has started on this log, and when it last did.
    starts: int = 0
    last_start: str | None = None
    repairs: int = 0
    # Runs by id, in creation order (dicts keep insertion order); deleted runs are gone.
    runs: dict[str, RunState] = msgspec.field(default_factory=dict)
    # The timed run in progress (at most one); watch runs go on beside it (`watches`).
    active_run: str | None = None
    # The last calibration, whether of a run or of the `calibrate` op.
    calibration: CalibrationPayload | None = None
    calibrated_at: str | None = None

    @property
    def phase(self) -> Phase:
        """The active run's phase, or idle."""
        if self.active_run is None:
            return Phase.IDLE
        return self.runs[self.active_run].phase

    @property
    def watches(self) -> list[RunState]:
        """The watch runs in progress, oldest first."""
        return [run for run in self.runs.values() if run.watch is not None and run.active]


# Events that belong to one existing run (their payload names it).
_RUN_EVENTS = (
    PhaseChanged,
    LateStart,
    OpeningMissed,
    RequestArmed,
    RequestSent,
    CrnUpdate,
    Done,
    RunCancelled,
    RunResumed,
    SeatsSeen,
    TokenRefreshed,
    TokenRefreshFailed,
    WatchStalled,
)


def _with_run(state: DaemonState, run: RunState) -> DaemonState:
    runs = {**state.runs, run.run_id: run}
    if run.watch is not None:
        return msgspec.structs.replace(state, runs=runs)
    active = (
        run.run_id if run.active else (None if state.active_run == run.run_id else state.active_run)
    )
    return msgspec.structs.replace(state, runs=runs, active_run=active)


def apply(state: DaemonState, event: Event) -> DaemonState:
    """Fold one event into the state; events that change nothing return `state` itself."""
    replace = msgspec.structs.replace
    match event:
        case ConfigChanged():
            return replace(state, config=event.payload.config)
        case RunCreated():
            _check_new_run(state, event)
            return _with_run(state, new_run(event.payload, event.timestamp))
        case Calibration():
            state = replace(state, calibration=event.payload, calibrated_at=event.timestamp)
            if event.payload.run_id is None:
                return state
            run = _existing(state, event.payload.run_id, event)
            return _with_run(state, replace(run, calibration=event.payload))
        case DaemonStarted():
            return replace(state, starts=state.starts + 1, last_start=event.timestamp)
        case LogCreated():
            return replace(state, log_id=event.payload.log_id)
        case LogRepaired():
            return replace(state, repairs=state.repairs + 1)
        case RunDeleted():
            if _existing(state, event.payload.run_id, event).active:
                raise ImpossibleEvent(
                    f"run_deleted #{event.seq}: run {event.payload.run_id} has not ended"
                )
            runs = {key: run for key, run in state.runs.items() if key != event.payload.run_id}
            return replace(state, runs=runs)
    if not isinstance(event, _RUN_EVENTS):
        return state
    run = _existing(state, event.payload.run_id, event)
    updated = _apply_to_run(run, event)
    return state if updated is run else _with_run(state, updated)


def _check_new_run(state: DaemonState, event: RunCreated) -> None:
    # `start` refuses both: a second record of one run, or two runs at once, would let a
    # replay resume a run as if it had never sent anything.
    run_id = event.payload.run_id
    if run_id in state.runs:
        raise ImpossibleEvent(f"run_created #{event.seq}: run {run_id} exists already")
    if state.active_run is not None and event.payload.watch is None:
        raise ImpossibleEvent(f"run_created #{event.seq}: run {state.active_run} is still active")


def _existing(state: DaemonState, run_id: str, event: Event) -> RunState:
    """The run an event names; none (never created, or deleted once ended) is impossible."""
    run = state.runs.get(run_id)
    if run is None:
        raise ImpossibleEvent(f"{event.__struct_config__.tag} #{event.seq}: no run {run_id}")
    return run


def _moved(run: RunState, phase: Phase, event: Event) -> None:
    # One table for both kinds of run; a watch never calibrates, a timed run never watches.
    kind_allows = (phase in WATCH_PHASES) if run.watch is not None else phase != Phase.WATCHING
    if not can_move(run.phase, phase) or not kind_allows:
        raise ImpossibleEvent(
            f"{event.__struct_config__.tag} #{event.seq}: run {run.run_id} "
            f"cannot move from {run.phase} to {phase}"
        )


def _apply_to_run(run: RunState, event: Event) -> RunState:
    """Apply a run's own event, through the phase table: the engine and replay alike."""
    replace = msgspec.structs.replace
    if not run.active:
        raise ImpossibleEvent(
            f"{event.__struct_config__.tag} #{event.seq}: run {run.run_id} "
            f"has already ended ({run.phase})"
        )
    match event:
        case PhaseChanged():
            phase = event.payload.phase
            _moved(run, phase, event)
            ended = phase in (Phase.DONE, Phase.FAILED)
            return replace(
                run,
                phase=phase,
                reason=event.payload.reason,
                finished_at=event.timestamp if ended else None,
            )
        case LateStart() | OpeningMissed():
            # Late is what a run finds before its first POST, and says once.
            if run.requests or run.late_by_s is not None:
                raise ImpossibleEvent(
                    f"{event.__struct_config__.tag} #{event.seq}: run {run.run_id} "
                    + ("has sent already" if run.requests else "was found late already")
                )
            return replace(
                run,
                late_by_s=event.payload.late_by_s,
                opening_missed=isinstance(event, OpeningMissed),
            )
        case RequestArmed():
            return with_request(run, event.payload)
        case RequestSent():
            return with_request(run, event.payload.armed())
        case CrnUpdate():
            return with_results(run, event.payload)
        case Done():
            _moved(run, event.payload.phase, event)
            return finished(run, event.payload, event.timestamp)
        case RunCancelled():
            _moved(run, Phase.CANCELLED, event)
            return replace(
                run, phase=Phase.CANCELLED, reason="cancelled", finished_at=event.timestamp
            )
        case RunResumed():
            return replace(run, resumes=run.resumes + 1)
        case SeatsSeen() | WatchStalled():
            if run.watch is None:
                raise ImpossibleEvent(
                    f"{event.__struct_config__.tag} #{event.seq}: run {run.run_id} is no watch"
                )
            if isinstance(event, SeatsSeen):
                return replace(run, seats=event.payload)
            cause, reason = event.payload.cause, event.payload.reason
            stalls = {key: text for key, text in run.stalls.items() if key != cause}
            return replace(run, stalls=stalls | ({cause: reason} if reason else {}))
        case TokenRefreshed() | TokenRefreshFailed():
            # A refresh belongs to the wait: after the first POST none is made (9.10); a
            # watch, which may wait again after a POST, refreshes whenever it waits.
            if run.requests and run.watch is None:
                raise ImpossibleEvent(
                    f"{event.__struct_config__.tag} #{event.seq}: run {run.run_id} has sent already"
                )
            failed = event.payload if isinstance(event, TokenRefreshFailed) else None
            record = RefreshRecord(
                kind=event.payload.kind,
                at_ns=event.payload.at_ns,
                ok=failed is None,
                session_lost=failed is not None and failed.code == LoginFailure.SESSION_EXPIRED,
            )
            return replace(run, refreshes=(*run.refreshes, record))
    return run


def other_posts(state: DaemonState, run: RunState) -> list[RequestRecord]:
    """The POSTs other runs sent to the OBS `run` sends to, oldest first.

    OBS's debounce and its request-volume limit are per token, not per run. Another OBS (a
    test server, the simulator) keeps its own, so only runs with the same `obs_base_url` count.
    """
    posts = [
        request
        for other in state.runs.values()
        if other.run_id != run.run_id and other.config.obs_base_url == run.config.obs_base_url
        for request in other.requests
    ]
    return sorted(posts, key=lambda request: request.responded_ns or request.planned_ns)
