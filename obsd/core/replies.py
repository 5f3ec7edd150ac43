"""The `data` of every successful response, one Struct per op: the contract for replies.

`REPLIES` maps each op to its reply type; the `schema` op describes them all, and obsctl
decodes what the daemon sends with them.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

from obsd.core.clock_select import KernelClock, SourceView
from obsd.core.config import Config
from obsd.core.events import CalibrationPayload, LoginCheckedPayload
from obsd.core.logformat import SegmentDamage
from obsd.core.login import LoginInfo
from obsd.core.phases import Phase
from obsd.core.protocol import Access
from obsd.core.runs import RunDurations, RunState, RunSummary
from obsd.core.token import StoredToken, TokenInfo


class PingReply(msgspec.Struct, frozen=True):
    """`ping`."""

    pong: bool = True


class DaemonInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The running process."""

    version: str
    pid: int
    started_at: str | None
    uptime_s: float
    replayed_events: int
    # Which student's daemon on a shared VPS (obsd@NAME.service); None: the only one.
    instance: str | None = None


class ActiveRun(RunSummary, frozen=True, kw_only=True):
    """The run in progress: its summary, when it fires, and how long until its target."""

    fire_at: str | None
    remaining_s: float


class LogInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The event log's lineage, head and health."""

    log_id: str | None
    head_seq: int
    durable_seq: int
    segments: int
    directory: str
    damage: SegmentDamage | None
    failure: str | None
    repairs: int


ClockStatus = Literal["unknown", "ok", "offset", "conflict", "system_clock", "obs_date", "no_time"]


class ClockHealth(msgspec.Struct, frozen=True, kw_only=True):
    """The last calibration's verdict on the clock, and the kernel's view now."""

    status: ClockStatus
    detail: str | None
    checked_at: str | None
    ntp_offset_ms: float | None
    ntp_delay_ms: float | None
    error_ms: float | None = None
    sources: list[SourceView] = msgspec.field(default_factory=list)
    kernel: KernelClock | None = None


class WatchStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One watch in progress, as `status` shows it."""

    run_id: str
    crn: str
    branch: str
    phase: Phase
    # What the page said when the numbers last changed (none read yet: null).
    quota: int | None
    enrolled: int | None
    seen_at: str | None
    attempts: int
    stalls: list[str]  # why it is stalled now (the page, the token); [] when it is not
    text: str  # the same in words


class StatusReply(msgspec.Struct, frozen=True, kw_only=True):
    """`status`."""

    daemon: DaemonInfo
    phase: Phase  # of the timed run in progress (idle: none; watches are listed apart)
    active_run: ActiveRun | None
    log: LogInfo
    access: Access
    clock: ClockHealth
    watches: list[WatchStatus] = msgspec.field(default_factory=list)


class ConfigReply(msgspec.Struct, frozen=True, kw_only=True):
    """`config` and `configure`: the plan, the token as a description, and advice on the plan."""

    config: Config
    token: StoredToken
    login: LoginInfo
    # Not errors: what a person should know about the plan (the order of a long ECRN list).
    warnings: list[str] = msgspec.field(default_factory=list)


class EventsPage(msgspec.Struct, frozen=True, kw_only=True):
    """`events`: event lines as the log holds them, and where the next page starts."""

    items: list[msgspec.Raw]
    next_after_seq: int
    head_seq: int
    has_more: bool


class LogHealth(msgspec.Struct, frozen=True, kw_only=True):
    """Whether the log takes appends."""

    writable: bool
    head_seq: int
    durable_seq: int


class DiskHealth(msgspec.Struct, frozen=True, kw_only=True):
    """Space on the state directory's file system."""

    path: str
    free_bytes: int
    total_bytes: int
    low: bool
    # The log room a run reserves at start is held by the active run, or could be made now.
    room_for_a_run: bool


class HealthReply(msgspec.Struct, frozen=True, kw_only=True):
    """`health`: ok, or the problems an operator should hear about."""

    ok: bool
    problems: list[str]
    log: LogHealth
    disk: DiskHealth
    clock: ClockHealth


class TokenTestReply(msgspec.Struct, frozen=True, kw_only=True):
    """`test_token`: what OBS and the expiry check say of the token."""

    valid: bool
    http_status: int | None
    message: str
    token: TokenInfo
    error: str | None
    warnings: list[str]


class LoginReply(msgspec.Struct, frozen=True, kw_only=True):
    """`login` and `logout`: the credentials as they may be shown."""

    login: LoginInfo


class StartReply(msgspec.Struct, frozen=True, kw_only=True):
    """`start`: the new run."""

    run_id: str
    target: str | None
    warnings: list[str]


class WatchSeatReply(msgspec.Struct, frozen=True, kw_only=True):
    """`watch_seat`: the new watch run."""

    run_id: str
    warnings: list[str]


class CancelReply(msgspec.Struct, frozen=True, kw_only=True):
    """`cancel`: the run, its phase now, and the phase it was cancelled in."""

    run_id: str
    phase: Phase
    was: Phase


class Pagination(msgspec.Struct, frozen=True, kw_only=True):
    """Where a page stands among all of them."""

    page: int
    limit: int
    total_items: int
    total_pages: int
    has_next: bool
    has_prev: bool


class RunsPage(msgspec.Struct, frozen=True, kw_only=True):
    """`runs`: one page of the history."""

    items: list[RunSummary]
    pagination: Pagination


class RunReply(RunState, frozen=True, kw_only=True):
    """`run`: the whole record of one run, and how long things took."""

    durations: RunDurations


class DeleteReply(msgspec.Struct, frozen=True, kw_only=True):
    """`delete_run`."""

    run_id: str
    deleted: bool = True


class TailReply(msgspec.Struct, frozen=True, kw_only=True):
    """`tail`: where the replay starts; the event lines and `caught_up` follow."""

    log_id: str | None
    after_seq: int
    head_seq: int
    follow: bool


# The JSON Schema itself: an object whose shape `schema` describes in words, not in a Struct.
SchemaReply = dict[str, Any]

REPLIES: Final[dict[str, Any]] = {
    "ping": PingReply,
    "status": StatusReply,
    "config": ConfigReply,
    "configure": ConfigReply,
    "tail": TailReply,
    "events": EventsPage,
    "health": HealthReply,
    "schema": SchemaReply,
    "test_token": TokenTestReply,
    "login": LoginReply,
    "logout": LoginReply,
    "test_login": LoginCheckedPayload,
    "calibrate": CalibrationPayload,
    "start": StartReply,
    "watch_seat": WatchSeatReply,
    "cancel": CancelReply,
    "runs": RunsPage,
    "run": RunReply,
    "delete_run": DeleteReply,
}
