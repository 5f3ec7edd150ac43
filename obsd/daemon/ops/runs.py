"""The run ops: start, cancel, runs, run, delete_run."""

from __future__ import annotations

import math
import uuid

from obsd.core.events import RunCancelledPayload, RunCreatedPayload, RunDeletedPayload
from obsd.core.protocol import Cancel, DeleteRun, ErrorCode, GetRun, ProtocolError, Runs, Start
from obsd.core.replies import (
    CancelReply,
    DeleteReply,
    Pagination,
    RunReply,
    RunsPage,
    StartReply,
)
from obsd.core.runs import RunState, durations, summary
from obsd.core.start import Refusal, check_start
from obsd.daemon.context import Caller, Context


async def start(ctx: Context, request: Start, caller: Caller) -> StartReply:
    """Start a run from the current configuration, if every check passes."""
    stored = ctx.tokens.stored
    verdict = check_start(
        ctx.state,
        stored.info,
        stored.problem,
        ctx.now(),
        can_log_in=ctx.logins.credentials is not None,
    )
    if isinstance(verdict, Refusal):
        raise ProtocolError(verdict.code, verdict.message)
    try:
        ctx.journal.reserve_for_run()
    except OSError as exc:
        raise ProtocolError(
            ErrorCode.NOT_READY,
            f"no room can be reserved on the state disk for the run's log ({exc.strerror}): "
            "free some space, then start again",
        ) from exc
    run_id = str(uuid.uuid4())
    config = ctx.state.config
    await ctx.journal.append(
        RunCreatedPayload(run_id, caller.actor, config, verdict.token, verdict.target_ns)
    )
    ctx.runner.start(run_id)
    return StartReply(run_id=run_id, target=config.target, warnings=verdict.warnings)


async def cancel(ctx: Context, request: Cancel, caller: Caller) -> CancelReply:
    """Stop the active run at once."""
    run_id = ctx.state.active_run
    if run_id is None:
        raise ProtocolError(ErrorCode.NO_ACTIVE_RUN, "no run is in progress")
    await ctx.runner.cancel()
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
