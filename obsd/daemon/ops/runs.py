"""The run ops: start, watch_seat, cancel, runs, run, delete_run."""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import msgspec

from obsd.core.events import RunCancelledPayload, RunCreatedPayload, RunDeletedPayload
from obsd.core.protocol import (
    Cancel,
    DeleteRun,
    ErrorCode,
    GetRun,
    ProtocolError,
    Runs,
    Start,
    WatchSeat,
)
from obsd.core.replies import (
    CancelReply,
    DeleteReply,
    Pagination,
    RunReply,
    RunsPage,
    StartReply,
    WatchSeatReply,
)
from obsd.core.runs import RunState, durations, summary
from obsd.core.start import GoAhead, Refusal, WatchGo, check_start, check_watch
from obsd.core.state import DaemonState
from obsd.core.token import TokenInfo
from obsd.daemon.context import Caller, Context

Admitted = TypeVar("Admitted", GoAhead, WatchGo)
# A check a new run must pass: (state, token, its problem, now, can log in) -> verdict.
Admission = Callable[
    [DaemonState, TokenInfo | None, str | None, datetime, bool], Refusal | Admitted
]


async def start(ctx: Context, request: Start, caller: Caller) -> StartReply:
    """Start a run from the current configuration, if every check passes."""
    verdict = _admitted(ctx, check_start)
    run_id = str(uuid.uuid4())
    config = ctx.state.config
    await ctx.journal.append(
        RunCreatedPayload(run_id, caller.actor, config, verdict.token, verdict.target_ns)
    )
    ctx.runner.start(run_id)
    return StartReply(run_id=run_id, target=config.target, warnings=verdict.warnings)


async def watch_seat(ctx: Context, request: WatchSeat, caller: Caller) -> WatchSeatReply:
    """Start a watch run for a seat in one section, if every check passes."""
    verdict = _admitted(ctx, functools.partial(check_watch, request=request))
    run_id = str(uuid.uuid4())
    plan = verdict.plan
    # The watch's own plan: its section to add (tried again whenever a seat frees, which is
    # what retry_full means), its drops, no backups, no target; the rest (OBS, budget) as
    # configured.
    config = msgspec.structs.replace(
        ctx.state.config,
        ecrn=(plan.crn,),
        scrn=tuple(plan.drop),
        backup={},
        retry_full=True,
        target=None,
    )
    created_ns = ctx.clock.wall_ns()
    await ctx.journal.append(
        RunCreatedPayload(run_id, caller.actor, config, verdict.token, created_ns, plan)
    )
    ctx.runner.start(run_id)
    return WatchSeatReply(run_id=run_id, warnings=verdict.warnings)


def _admitted(ctx: Context, check: Admission[Admitted]) -> Admitted:
    """The go-ahead of `check` on the state, the token and now, and the new run's log room."""
    stored = ctx.tokens.stored
    can_log_in = ctx.logins.credentials is not None
    verdict = check(ctx.state, stored.info, stored.problem, ctx.now(), can_log_in)
    if isinstance(verdict, Refusal):
        raise ProtocolError(verdict.code, verdict.message)
    _reserve(ctx)
    return verdict


def _reserve(ctx: Context) -> None:
    """Room on the state disk for a new run's log, or a refusal that says so."""
    try:
        ctx.journal.reserve_for_run()
    except OSError as exc:
        raise ProtocolError(
            ErrorCode.NOT_READY,
            f"no room can be reserved on the state disk for the run's log ({exc.strerror}): "
            "free some space, then start again",
        ) from exc


async def cancel(ctx: Context, request: Cancel, caller: Caller) -> CancelReply:
    """Stop a run at once: the one named, else the timed run in progress."""
    run_id = request.run_id or ctx.state.active_run
    if run_id is None:
        watches = ", ".join(run.run_id for run in ctx.state.watches)
        also = f" (watches in progress: {watches}; name one to cancel it)" if watches else ""
        raise ProtocolError(ErrorCode.NO_ACTIVE_RUN, f"no timed run is in progress{also}")
    run = _find(ctx, run_id)
    if not run.active:
        raise ProtocolError(
            ErrorCode.NO_ACTIVE_RUN, f"run {run_id} has already ended ({run.phase})"
        )
    await ctx.runner.cancel(run_id)
    run = ctx.state.runs[run_id]
    if run.active:
        await ctx.journal.append(RunCancelledPayload(run_id, caller.actor, run.phase))
    return CancelReply(run_id=run_id, phase=ctx.state.runs[run_id].phase, was=run.phase)


async def runs(ctx: Context, request: Runs, caller: Caller) -> RunsPage:
    """One page of the history, filtered and sorted."""
    found = list(ctx.state.runs.values())
    if request.status is not None:
        found = [run for run in found if run.phase == request.status]
    if request.sort == "created_desc":
        found.reverse()
    total = len(found)
    pages = max(1, math.ceil(total / request.limit))
    first = (request.page - 1) * request.limit
    return RunsPage(
        items=[summary(run) for run in found[first : first + request.limit]],
        pagination=Pagination(
            page=request.page,
            limit=request.limit,
            total_items=total,
            total_pages=pages,
            has_next=request.page < pages,
            has_prev=request.page > 1,
        ),
    )


def _find(ctx: Context, run_id: str) -> RunState:
    run = ctx.state.runs.get(run_id)
    if run is None:
        raise ProtocolError(ErrorCode.RUN_NOT_FOUND, f"no run {run_id!r}")
    return run


async def run(ctx: Context, request: GetRun, caller: Caller) -> RunReply:
    """One run in full."""
    found = _find(ctx, request.run_id)
    return RunReply(
        **{name: getattr(found, name) for name in found.__struct_fields__},
        durations=durations(found),
    )


async def delete_run(ctx: Context, request: DeleteRun, caller: Caller) -> DeleteReply:
    """Drop a finished run from the history."""
    found = _find(ctx, request.run_id)
    if found.active:
        raise ProtocolError(
            ErrorCode.RUN_IN_PROGRESS, f"run {found.run_id} is {found.phase}; cancel it first"
        )
    await ctx.journal.append(RunDeletedPayload(found.run_id, caller.actor))
    return DeleteReply(run_id=found.run_id)
