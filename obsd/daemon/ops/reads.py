"""The ops that only read: ping, status, config, events, health, schema."""

from __future__ import annotations

import os
import shutil
from typing import Final

import msgspec

from obsd import __version__
from obsd.core.config import plan_warnings
from obsd.core.events import utc_timestamp
from obsd.core.notices import run_before_target
from obsd.core.protocol import Events, GetConfig, Health, Ping, Schema, Status
from obsd.core.replies import (
    ActiveRun,
    ConfigReply,
    DaemonInfo,
    DiskHealth,
    EventsPage,
    HealthReply,
    LogHealth,
    LogInfo,
    PingReply,
    SchemaReply,
    StatusReply,
    WatchStatus,
)
from obsd.core.runs import RunState, summary
from obsd.core.schema import schema
from obsd.core.status_text import watch_text
from obsd.core.time_advice import clock_health
from obsd.core.timing import NS, instant
from obsd.core.token import judge_expiry
from obsd.daemon.context import Caller, Context
from obsd.daemon.journal import RUN_LOG_RESERVE_BYTES

# `health` warns before a full disk bites: below this, a burst of events could fail to land.
LOW_DISK_BYTES: Final = 64 * 1024 * 1024


class _TypeOnly(msgspec.Struct):
    type: str


_type_decoder: Final = msgspec.json.Decoder(_TypeOnly)


async def ping(ctx: Context, request: Ping, caller: Caller) -> PingReply:
    """`ping`."""
    return PingReply()


def _active_run(ctx: Context) -> ActiveRun | None:
    state = ctx.state
    if state.active_run is None:
        return None
    run = state.runs[state.active_run]
    calibration = run.calibration
    return ActiveRun(
        **msgspec.structs.asdict(summary(run)),
        fire_at=calibration.fire_at if calibration else None,
        remaining_s=round((run.target_ns - ctx.clock.wall_ns()) / NS, 3),
    )


async def status(ctx: Context, request: Status, caller: Caller) -> StatusReply:
    """`status`."""
    state, log = ctx.state, ctx.journal.log
    return StatusReply(
        daemon=DaemonInfo(
            version=__version__,
            pid=os.getpid(),
            started_at=state.last_start,
            uptime_s=round((ctx.clock.mono_ns() - ctx.started_mono_ns) / NS, 3),
            replayed_events=ctx.replayed_events,
            instance=ctx.instance,
        ),
        phase=state.phase,
        active_run=_active_run(ctx),
        log=LogInfo(
            log_id=state.log_id,
            head_seq=log.head_seq,
            durable_seq=log.durable_seq,
            segments=log.segment_count,
            directory=str(log.directory),
            damage=log.damage,
            failure=log.failure,
            repairs=state.repairs,
        ),
        access=caller.access,
        clock=clock_health(
            state.calibration, state.calibrated_at, ctx.instruments.time.read_kernel()
        )[0],
        watches=[_watch_status(run, ctx.clock.wall_ns()) for run in state.watches],
    )


def _watch_status(run: RunState, wall_ns: int) -> WatchStatus:
    plan, seats = run.watch, run.seats
    assert plan is not None
    return WatchStatus(
        run_id=run.run_id,
        crn=plan.crn,
        branch=plan.branch,
        phase=run.phase,
        quota=seats.quota if seats else None,
        enrolled=seats.enrolled if seats else None,
        seen_at=utc_timestamp(seats.at_ns) if seats else None,
        attempts=len(run.requests),
        stalls=list(run.stalls.values()),
        text=watch_text(run, wall_ns),
    )


def config_reply(ctx: Context) -> ConfigReply:
    """The plan as `config` and `configure` answer it, with its advice."""
    config = ctx.state.config
    return ConfigReply(
        config=config,
        token=ctx.tokens.stored,
        login=ctx.logins.info,
        warnings=plan_warnings(config),
    )


async def config(ctx: Context, request: GetConfig, caller: Caller) -> ConfigReply:
    """`config`."""
    return config_reply(ctx)


async def events(ctx: Context, request: Events, caller: Caller) -> EventsPage:
    """`events`: one page of event lines, filtered by type."""
    wanted = set(request.types) if request.types else None
    items: list[msgspec.Raw] = []
    cursor = request.after_seq
    log = ctx.journal.log
    while len(items) < request.limit and cursor < log.head_seq:
        chunk = await log.read_after(cursor)
        for line in chunk.splitlines():
            cursor += 1
            if wanted is None or _type_decoder.decode(line).type in wanted:
                items.append(msgspec.Raw(line))
                if len(items) == request.limit:
                    break
    return EventsPage(
        items=items, next_after_seq=cursor, head_seq=log.head_seq, has_more=cursor < log.head_seq
    )


async def health(ctx: Context, request: Health, caller: Caller) -> HealthReply:
    """`health`: ok, or what an operator should look at."""
    return health_reply(ctx)


def health_problems(ctx: Context) -> list[str]:
    """What `health` would list now (notifications ask while a run waits)."""
    return health_reply(ctx).problems


def _token_problem(ctx: Context) -> str | None:
    """Whether the token in use will not carry the waiting run to its target."""
    run = run_before_target(ctx.state)
    if run is None:
        return None
    if ctx.logins.credentials is not None:
        return None  # The run logs in for a fresh token; a failure is told when it happens.
    stored = ctx.tokens.stored
    if stored.info is None:
        return stored.problem or (
            f"no OBS token is configured: run {run.run_id} will fail at its target; "
            "configure one (obsctl configure --token-stdin)"
        )
    verdict = judge_expiry(stored.info, instant(run.target_ns), ctx.now())
    return None if verdict.error is None else f"run {run.run_id}: {verdict.error}"


def health_reply(ctx: Context) -> HealthReply:
    """The `health` reply as of now."""
    log = ctx.journal.log
    usage = shutil.disk_usage(log.directory)
    problems: list[str] = []
    if log.damage is not None:
        problems.append(str(log.damage))
    if log.failure is not None:
        problems.append(log.failure)
    if not os.access(log.directory, os.W_OK):
        problems.append(f"{log.directory} is not writable")
    # A run reserves its log room at start (and holds it until it ends): without that room
    # `start` is refused, so say so before anyone tries.
    room_for_a_run = log.holds_reservation or usage.free >= RUN_LOG_RESERVE_BYTES
    if not room_for_a_run:
        problems.append(
            f"only {usage.free // 1024} KiB free on the state disk: a run cannot reserve the "
            f"{RUN_LOG_RESERVE_BYTES // 1024} KiB its log needs, so start is refused; free "
            "some space"
        )
    elif usage.free < LOW_DISK_BYTES:
        problems.append(f"only {usage.free // (1024 * 1024)} MiB free on the state disk")
    token_problem = _token_problem(ctx) or ctx.tokens.stored.problem
    if token_problem:
        problems.append(token_problem)
    kernel = ctx.instruments.time.read_kernel()
    clock, clock_problems = clock_health(ctx.state.calibration, ctx.state.calibrated_at, kernel)
    problems += clock_problems
    problems += ctx.notifications.problems()
    problems += [
        f"watch {run.run_id} is stalled: {reason}"
        for run in ctx.state.watches
        for reason in run.stalls.values()
    ]
    return HealthReply(
        ok=not problems,
        problems=problems,
        log=LogHealth(
            writable=log.damage is None and log.failure is None,
            head_seq=log.head_seq,
            durable_seq=log.durable_seq,
        ),
        disk=DiskHealth(
            path=str(log.directory),
            free_bytes=usage.free,
            total_bytes=usage.total,
            low=usage.free < LOW_DISK_BYTES,
            room_for_a_run=room_for_a_run,
        ),
        clock=clock,
    )


async def schema_of_protocol(ctx: Context, request: Schema, caller: Caller) -> SchemaReply:
    """`schema`."""
    return schema()
