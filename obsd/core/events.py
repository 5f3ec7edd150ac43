"""The event vocabulary: every line of the log and of `tail` is one of these.

An event is `{"type": ..., "seq": N, "timestamp": "<ISO-8601 UTC>", "payload": {...}}`.
The log assigns `seq` and `timestamp`; producers build only the payload.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec
from msgspec import UNSET, UnsetType

from obsd.core.clock_select import KernelClock, SourceView, TimeStatus
from obsd.core.config import Config
from obsd.core.login import LoginFailure, LoginInfo, LoginStep
from obsd.core.phases import Phase
from obsd.core.results import CrnKind, CrnState, Outcome
from obsd.core.timing import instant
from obsd.core.token import TokenInfo
from obsd.core.token_refresh import RefreshKind

# How much a `log` event matters to the person following the run.
Level = Literal["info", "warning"]


class Actor(msgspec.Struct, frozen=True):
    """Who asked for a change, as the kernel reported the peer (SO_PEERCRED)."""

    uid: int
    pid: int


class LogCreatedPayload(msgspec.Struct, frozen=True):
    """The first event of a log: names its lineage."""

    log_id: str
    server: str


class DaemonStartedPayload(msgspec.Struct, frozen=True):
    """The daemon replayed the log and is about to accept connections."""

    server: str
    pid: int
    replayed_events: int


class DaemonStoppedPayload(msgspec.Struct, frozen=True):
    """The daemon is shutting down cleanly."""

    reason: str


class LogRepairedPayload(msgspec.Struct, frozen=True):
    """A torn last record (a crash mid-write) was cut off; the original file was kept."""

    segment: str
    truncated_at: int
    removed_bytes: int
    broken_copy: str


class ConfigChangedPayload(msgspec.Struct, frozen=True, omit_defaults=True):
    """The configuration after a `configure` command, and which fields it set."""

    actor: Actor
    changed: list[str]
    config: Config
    # Present only when the command set or cleared the token; never the token itself.
    token: TokenInfo | UnsetType | None = UNSET


class WatchPlan(msgspec.Struct, frozen=True, kw_only=True):
    """A watch run's plan: the section whose seat it waits for, how often it looks, until when."""

    crn: str
    branch: str  # the letters of its course code (BLG), which name its schedule page
    drop: list[str] = msgspec.field(default_factory=list)
    every_s: float
    until_ns: int | None = None


class RunCreatedPayload(msgspec.Struct, frozen=True):
    """`start` or `watch_seat`: a run with its own snapshot of the configuration (no token)."""

    run_id: str
    actor: Actor
    config: Config
    # None: no token yet; the run logs in for one (core/token_refresh.py).
    token: TokenInfo | None
    target_ns: int
    # Set on a watch run (`watch_seat`): it waits for a seat instead of an instant.
    watch: WatchPlan | None = None


class PhaseChangedPayload(msgspec.Struct, frozen=True):
    """A run entered a phase (calibrating, waiting, registering, done, failed)."""

    run_id: str
    phase: Phase
    reason: str | None = None


class CountdownPayload(msgspec.Struct, frozen=True):
    """Seconds left until the fire instant (about once a second while waiting)."""

    run_id: str
    remaining: float


class MessagePayload(msgspec.Struct, frozen=True):
    """A message for the person following the run."""

    message: str
    level: Level = "info"
    run_id: str | None = None


class CalibrationPayload(msgspec.Struct, frozen=True, kw_only=True):
    """What was measured about the clock and the path to OBS, and the instant planned from it.

    `ntp_offset_ms` is how far true time is ahead of the system clock by the estimate;
    `ntp_server` and `ntp_delay_ms` are the chosen server's. Events written before time
    sources were judged lack `time_status`, `sources`, `kernel` and `margin_ms`.
    """

    run_id: str | None
    ntp_server: str | None
    ntp_offset_ms: float | None
    ntp_delay_ms: float | None
    ntp_samples: int
    ntp_error: str | None = None
    time_status: TimeStatus | None = None
    time_error_ms: float | None = None
    time_conflict: str | None = None
    sources: list[SourceView] = msgspec.field(default_factory=list)
    kernel: KernelClock | None = None
    rtt_min_ms: float | None
    rtt_median_ms: float | None
    rtt_jitter_ms: float | None
    rtt_samples: int
    rtt_error: str | None = None
    date_offset_s: float | None
    date_check: str
    send_delay_ms: float | None
    fire_at: str | None = None
    fire_at_ns: int | None = None
    margin_ms: float | None = None
    lead_ms: float = 0.0


class RequestArmedPayload(msgspec.Struct, frozen=True):
    """A registration POST is armed to leave at `planned_ns` (true time).

    Written before the final wait, so that a crash during the send still leaves the POST on
    record; when it really left is known only with its answer (`CrnUpdatePayload.sent_ns`).
    """

    run_id: str
    attempt: int
    ecrn: list[str]
    scrn: list[str]
    planned_ns: int


class RequestSentPayload(msgspec.Struct, frozen=True):
    """How obsd 0.1 logged an armed POST (as `request_sent`, with `at_ns`); read, never written."""

    run_id: str
    attempt: int
    ecrn: list[str]
    scrn: list[str]
    at_ns: int

    def armed(self) -> RequestArmedPayload:
        """The same record under its present name."""
        return RequestArmedPayload(self.run_id, self.attempt, self.ecrn, self.scrn, self.at_ns)


class LateStartPayload(msgspec.Struct, frozen=True):
    """The run was started after its target had passed: its first POST goes out at once."""

    run_id: str
    # How long after the target the run knew it was late, by its estimate of true time.
    late_by_s: float


class OpeningMissedPayload(LateStartPayload, frozen=True):
    """The daemon was not running at the run's target (a restart past it): it fires at once."""


class CrnResult(msgspec.Struct, frozen=True, kw_only=True):
    """One CRN's result in one answer."""

    crn: str
    kind: CrnKind
    state: CrnState
    code: str | None
    message: str
    result_data: Any = None


class CrnUpdatePayload(msgspec.Struct, frozen=True, kw_only=True):
    """What came back for one POST: per-CRN results, or why there are none."""

    run_id: str
    attempt: int
    outcome: Outcome
    http_status: int | None
    sent_ns: int | None
    responded_ns: int | None
    results: list[CrnResult]
    detail: str | None = None


class DonePayload(msgspec.Struct, frozen=True):
    """The run ended: its phase (done or failed), why, and every CRN's final result."""

    run_id: str
    phase: Phase
    reason: str
    results: list[CrnResult]


class SeatsSeenPayload(msgspec.Struct, frozen=True, kw_only=True):
    """A watch read its section's seats on the public schedule, and they had changed."""

    run_id: str
    quota: int
    enrolled: int
    at_ns: int  # when the page was read, on the system clock


# Why a watch can be stalled; each cause begins and ends on its own.
StallCause = Literal["page", "token"]


class WatchStalledPayload(msgspec.Struct, frozen=True, kw_only=True):
    """A watch cannot do its job for now (the page unreadable for long, the token ending), or,
    with no reason, can again."""

    run_id: str
    cause: StallCause
    reason: str | None  # None: the stall of this cause is over
    since_ns: int


class RunCancelledPayload(msgspec.Struct, frozen=True):
    """`cancel`: the run stopped at once, in whatever phase it was."""

    run_id: str
    actor: Actor
    phase: Phase


class RunInterruptedPayload(msgspec.Struct, frozen=True):
    """The daemon stopped during the run; it resumes when the daemon starts again."""

    run_id: str
    phase: Phase
    reason: str


class RunResumedPayload(msgspec.Struct, frozen=True):
    """The daemon found this run unfinished after a restart and took it up again."""

    run_id: str
    phase: Phase
    pending: list[str]
    last_request_ns: int | None


class RunDeletedPayload(msgspec.Struct, frozen=True):
    """`delete_run`: the run is dropped from the history (its events stay in the log)."""

    run_id: str
    actor: Actor


class TokenTestedPayload(msgspec.Struct, frozen=True, kw_only=True):
    """`test_token`: what OBS said of the token, without using the registration endpoint."""

    token: TokenInfo | None
    valid: bool
    http_status: int | None
    message: str


class LoginChangedPayload(msgspec.Struct, frozen=True, kw_only=True):
    """`login` or `logout`: the İTÜ credentials were set or removed (shown, never the password)."""

    actor: Actor
    login: LoginInfo


class LoginCheckedPayload(msgspec.Struct, frozen=True, kw_only=True):
    """`test_login`: the whole login flow once, each step, and OBS's verdict on its token."""

    ok: bool
    code: LoginFailure | None
    message: str
    identity: str | None
    identities: list[str]
    steps: list[LoginStep]
    token: TokenInfo | None
    http_status: int | None


class TokenRefreshedPayload(msgspec.Struct, frozen=True, kw_only=True):
    """A waiting run logged in (or minted from its session) and uses the new token."""

    run_id: str
    kind: RefreshKind
    at_ns: int  # when the refresh began, true time
    token: TokenInfo
    identity: str | None
    steps: list[LoginStep]


class TokenRefreshFailedPayload(msgspec.Struct, frozen=True, kw_only=True):
    """A waiting run's refresh gave no token: why, and the token it keeps (if any)."""

    run_id: str
    kind: RefreshKind
    at_ns: int
    code: LoginFailure
    message: str
    steps: list[LoginStep]
    kept: TokenInfo | None


class Event(msgspec.Struct, frozen=True, tag_field="type"):
    """Common envelope; subclasses fix `type` and the payload's shape."""

    seq: int
    timestamp: str


class LogCreated(Event, frozen=True, tag="log_created"):
    payload: LogCreatedPayload


class DaemonStarted(Event, frozen=True, tag="daemon_started"):
    payload: DaemonStartedPayload


class DaemonStopped(Event, frozen=True, tag="daemon_stopped"):
    payload: DaemonStoppedPayload


class LogRepaired(Event, frozen=True, tag="log_repaired"):
    payload: LogRepairedPayload


class ConfigChanged(Event, frozen=True, tag="config_changed"):
    payload: ConfigChangedPayload


class RunCreated(Event, frozen=True, tag="run_created"):
    payload: RunCreatedPayload


class PhaseChanged(Event, frozen=True, tag="state"):
    payload: PhaseChangedPayload


class Countdown(Event, frozen=True, tag="countdown"):
    payload: CountdownPayload


class Message(Event, frozen=True, tag="log"):
    payload: MessagePayload


class Calibration(Event, frozen=True, tag="calibration"):
    payload: CalibrationPayload


class LateStart(Event, frozen=True, tag="late_start"):
    payload: LateStartPayload


class OpeningMissed(Event, frozen=True, tag="opening_missed"):
    payload: OpeningMissedPayload


class RequestArmed(Event, frozen=True, tag="request_armed"):
    payload: RequestArmedPayload


class RequestSent(Event, frozen=True, tag="request_sent"):
    """0.1's name for request_armed: logs written then still replay."""

    payload: RequestSentPayload


class CrnUpdate(Event, frozen=True, tag="crn_update"):
    payload: CrnUpdatePayload


class Done(Event, frozen=True, tag="done"):
    payload: DonePayload


class RunCancelled(Event, frozen=True, tag="run_cancelled"):
    payload: RunCancelledPayload


class RunInterrupted(Event, frozen=True, tag="run_interrupted"):
    payload: RunInterruptedPayload


class RunResumed(Event, frozen=True, tag="run_resumed"):
    payload: RunResumedPayload


class RunDeleted(Event, frozen=True, tag="run_deleted"):
    payload: RunDeletedPayload


class TokenTested(Event, frozen=True, tag="token_tested"):
    payload: TokenTestedPayload


class TokenRefreshed(Event, frozen=True, tag="token_refreshed"):
    payload: TokenRefreshedPayload


class TokenRefreshFailed(Event, frozen=True, tag="token_refresh_failed"):
    payload: TokenRefreshFailedPayload


class LoginChanged(Event, frozen=True, tag="login_changed"):
    payload: LoginChangedPayload


class LoginChecked(Event, frozen=True, tag="login_checked"):
    payload: LoginCheckedPayload


class SeatsSeen(Event, frozen=True, tag="seats_seen"):
    payload: SeatsSeenPayload


class WatchStalled(Event, frozen=True, tag="watch_stalled"):
    payload: WatchStalledPayload


AnyEvent = (
    LogCreated
    | DaemonStarted
    | DaemonStopped
    | LogRepaired
    | ConfigChanged
    | RunCreated
    | PhaseChanged
    | Countdown
    | Message
    | Calibration
    | LateStart
    | OpeningMissed
    | RequestArmed
    | RequestSent
    | CrnUpdate
    | Done
    | RunCancelled
    | RunInterrupted
    | RunResumed
    | RunDeleted
    | TokenTested
    | LoginChanged
    | LoginChecked
    | TokenRefreshed
    | TokenRefreshFailed
    | SeatsSeen
    | WatchStalled
)
EVENT_CLASSES: Final[tuple[type[Event], ...]] = AnyEvent.__args__
EVENT_TYPES: Final[frozenset[str]] = frozenset(
    str(cls.__struct_config__.tag) for cls in EVENT_CLASSES
)
# Producers hand the log a payload; this finds the event class that carries it.
EVENT_CLASS_FOR_PAYLOAD: Final[dict[type[Any], type[Event]]] = {
    field.type: cls
    for cls in EVENT_CLASSES
    for field in msgspec.structs.fields(cls)
    if field.name == "payload"
}

_encoder = msgspec.json.Encoder()
event_decoder: Final = msgspec.json.Decoder(AnyEvent)


def utc_timestamp(epoch_ns: int) -> str:
    """ISO-8601 UTC with microseconds and a Z, as every event carries."""
    return instant(epoch_ns).isoformat(timespec="microseconds").replace("+00:00", "Z")


def make_event(payload: msgspec.Struct, seq: int, epoch_ns: int) -> Event:
    """Wrap a payload in its event type with the given seq and time."""
    cls = EVENT_CLASS_FOR_PAYLOAD[type(payload)]
    return cls(seq=seq, timestamp=utc_timestamp(epoch_ns), payload=payload)  # type: ignore[call-arg]


def encode_event(event: Event) -> bytes:
    """One log line: the event as JSON plus the newline that frames it."""
    return _encoder.encode(event) + b"\n"
