"""The task of the active run: started by `start` or a resume, cancelled by `cancel`."""

from __future__ import annotations

import logging

import anyio
import anyio.abc

from obsd.adapters.clock import Clock
from obsd.adapters.eventlog import LogUnavailable
from obsd.core.events import DonePayload
from obsd.core.phases import Phase
from obsd.core.runs import crn_results
from obsd.daemon.engine import RunDriver, RunHost

logger = logging.getLogger("obsd.runner")


class Runner:
    """Runs at most one RunDriver at a time inside the daemon's task group."""

    def __init__(self, host: RunHost, clock: Clock, storage_failed: anyio.Event) -> None:
        self._host = host
        self._clock = clock
        self._storage_failed = storage_failed
        self._tasks: anyio.abc.TaskGroup | None = None
        self._scope: anyio.CancelScope | None = None
        self._finished = anyio.Event()
        self._finished.set()

    def bind(self, tasks: anyio.abc.TaskGroup) -> None:
        """Run drivers in this task group (the daemon's)."""
        self._tasks = tasks

    @property
    def running(self) -> bool:
        """A driver task is alive."""
        return not self._finished.is_set()

    def start(self, run_id: str) -> None:
        """Start driving `run_id`."""
        assert self._tasks is not None, "bind() the task group first"
        assert not self.running, "one run at a time"
        self._finished = anyio.Event()
        self._scope = anyio.CancelScope()
        self._tasks.start_soon(self._drive, run_id, self._scope, self._finished)

    async def cancel(self) -> None:
        """Stop the driver at once and wait until it has stopped."""
        if self._scope is not None:
            self._scope.cancel()
        await self._finished.wait()

    async def _drive(self, run_id: str, scope: anyio.CancelScope,
                     finished: anyio.Event) -> None:
        try:
            with scope:
                await RunDriver(self._host, run_id, self._clock).drive()
        except LogUnavailable as exc:
            logger.error("run %s stopped: the log refused an event: %s", run_id, exc)
            self._storage_failed.set()
        except Exception as exc:
            logger.exception("run %s failed", run_id)
            run = self._host.state.runs.get(run_id)
            if run is not None and run.active:
                # Ended like any other run, so that followers waiting for `done` see it.
                await self._host.log.append(DonePayload(
                    run_id, Phase.FAILED, f"internal error: {exc!r}", crn_results(run)))
        finally:
            finished.set()
