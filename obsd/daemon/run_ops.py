"""The engine's ops: start, cancel, runs, run, delete_run, test_token, calibrate."""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import msgspec

from obsd.adapters.obs_client import ObsClient
from obsd.core.events import (
    RunCancelledPayload,
    RunCreatedPayload,
    RunDeletedPayload,
    TokenTestedPayload,
)
from obsd.core.protocol import (
    Calibrate,
    Cancel,
    DeleteRun,
    ErrorCode,
    GetRun,
    ProtocolError,
    Runs,
    Start,
    TestToken,
)
from obsd.core.runs import RunState, durations, summary
from obsd.core.start import Refusal, check_start
from obsd.core.timing import epoch_ns
from obsd.core.token import judge_expiry
from obsd.daemon.calibration import calibrate

if TYPE_CHECKING:
    from obsd.daemon.service import Caller, Service

Handler = Callable[[Any, "Caller"], Awaitable[Any]]


def _target(service: Service) -> datetime | None:
    target = service.state.config.target
    return datetime.fromisoformat(target) if target else None


class RunOps:
    """Handlers of the engine's ops, sharing the daemon's Service."""

    def __init__(self, service: Service) -> None:
        self._service = service

    def handlers(self) -> dict[type[Any], Handler]:
        """Request type -> handler."""
        return {
            Start: self.start, Cancel: self.cancel, Runs: self.runs, GetRun: self.run,
            DeleteRun: self.delete_run, TestToken: self.test_token, Calibrate: self.calibrate,
        }

    async def start(self, request: Start, caller: Caller) -> Any:
        service = self._service
        stored = service.tokens.stored
        verdict = check_start(service.state, stored.info, stored.problem, service.now())
        if isinstance(verdict, Refusal):
            raise ProtocolError(verdict.code, verdict.message, request.id)
        run_id = str(uuid.uuid4())
        config = service.state.config
        await service.log.append(RunCreatedPayload(run_id, caller.actor, config, verdict.token,
                                                   verdict.target_ns))
        service.runner.start(run_id)
        return {"run_id": run_id, "target": config.target, "warnings": verdict.warnings}

    async def cancel(self, request: Cancel, caller: Caller) -> Any:
        service = self._service
        run_id = service.state.active_run
        if run_id is None:
            raise ProtocolError(ErrorCode.NO_ACTIVE_RUN, "no run is in progress", request.id)
        await service.runner.cancel()
        run = service.state.runs[run_id]
        if run.active:
            await service.log.append(RunCancelledPayload(run_id, caller.actor, run.phase))
        return {"run_id": run_id, "phase": service.state.runs[run_id].phase,
                "was": run.phase}

    async def runs(self, request: Runs, caller: Caller) -> Any:
        runs = list(self._service.state.runs.values())
        if request.status is not None:
            runs = [run for run in runs if run.phase == request.status]
        if request.sort == "created_desc":
            runs.reverse()
        total = len(runs)
        pages = max(1, math.ceil(total / request.limit))
        start = (request.page - 1) * request.limit
        return {
            "items": [summary(run) for run in runs[start:start + request.limit]],
            "pagination": {"page": request.page, "limit": request.limit, "total_items": total,
                           "total_pages": pages, "has_next": request.page < pages,
                           "has_prev": request.page > 1},
        }

    def _find(self, request: GetRun | DeleteRun) -> RunState:
        run = self._service.state.runs.get(request.run_id)
        if run is None:
            raise ProtocolError(ErrorCode.RUN_NOT_FOUND, f"no run {request.run_id!r}",
                                request.id)
        return run

    async def run(self, request: GetRun, caller: Caller) -> Any:
        run = self._find(request)
        return msgspec.to_builtins(run) | {"durations": durations(run)}

    async def delete_run(self, request: DeleteRun, caller: Caller) -> Any:
        run = self._find(request)
        if run.active:
            raise ProtocolError(ErrorCode.RUN_IN_PROGRESS,
                                f"run {run.run_id} is {run.phase}; cancel it first",
                                request.id)
        await self._service.log.append(RunDeletedPayload(run.run_id, caller.actor))
        return {"run_id": run.run_id, "deleted": True}

    async def test_token(self, request: TestToken, caller: Caller) -> Any:
        service = self._service
        token, info = service.tokens.token, service.tokens.stored.info
        if token is None or info is None:
            raise ProtocolError(ErrorCode.TOKEN_MISSING, service.tokens.stored.problem or
                                "no OBS token is configured", request.id)
        verdict = judge_expiry(info, _target(service), service.now())
        config = service.state.config
        status: int | None = None
        try:
            async with ObsClient(config.obs_base_url, token, config.read_timeout) as obs:
                status = (await obs.check_token()).http_status
        except httpx.HTTPError as exc:
            message = f"could not reach OBS at {config.obs_base_url}: {exc!r}"
        else:
            message = {200: "OBS accepts the token",
                       401: "OBS refuses the token (401): log in again"}.get(
                status, f"OBS answered HTTP {status}")
        valid = status == 200 and verdict.error is None
        await service.log.append(TokenTestedPayload(
            token=info, valid=valid, http_status=status, message=verdict.error or message))
        return {"valid": valid, "http_status": status, "message": message, "token": info,
                "error": verdict.error, "warnings": verdict.warnings}

    async def calibrate(self, request: Calibrate, caller: Caller) -> Any:
        service = self._service
        config = service.state.config
        target = _target(service)
        target_ns = None if target is None or target <= service.now() else epoch_ns(target)
        async with ObsClient(config.obs_base_url, service.tokens.token or "",
                             config.read_timeout) as obs:
            calibrated = await calibrate(None, config, target_ns, obs, service.clock)
        await service.log.append(calibrated.payload)
        return calibrated.payload
