"""The task of the active run: started by `start` or a resume, cancelled by `cancel`."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anyio
import anyio.abc

from obsd.adapters.clock import Clock
from obsd.adapters.eventlog import LogUnavailable
from obsd.adapters.login_store import LoginStore
from obsd.adapters.token_store import TokenStore
from obsd.core.events import DonePayload
from obsd.core.login import Credentials
from obsd.core.phases import Phase
from obsd.core.runs import crn_results
from obsd.core.token import TokenInfo
from obsd.daemon.driver import RunDriver, ShotUnlogged
from obsd.daemon.instruments import Instruments
from obsd.daemon.journal import Journal
from obsd.daemon.token_refresher import Keys

logger = logging.getLogger("obsd.runner")


@dataclass(frozen=True, slots=True)
class StoredKeys:
    """A run's keys from the daemon's stores: the token file or credential, and the login."""

    tokens: TokenStore
    logins: LoginStore

    def token(self) -> str | None:
        """The OBS token in use, if any."""
        return self.tokens.token

    def token_info(self) -> TokenInfo | None:
        """What may be shown of it."""
        return self.tokens.stored.info

    def credentials(self) -> Credentials | None:
        """The İTÜ credentials kept by `login`, if any."""
        return self.logins.credentials

    def keep(self, token: str) -> None:
        """Store a fresh token as the one in use (as `configure --token` would)."""
        self.tokens.replace(token)


class Runner:
    """Runs at most one RunDriver at a time, in the task group it was made for."""

    def __init__(
        self,
        tasks: anyio.abc.TaskGroup,
        journal: Journal,
        keys: Keys,
        clock: Clock,
        instruments: Instruments,
        storage_failed: anyio.Event,
    ) -> None:
        self._tasks = tasks
        self._journal = journal
        self._keys = keys
        self._clock = clock
        self._instruments = instruments
        self._storage_failed = storage_failed
        self._scope: anyio.CancelScope | None = None
        self._driver: RunDriver | None = None
        self._finished = anyio.Event()
        self._finished.set()

    @property
    def running(self) -> bool:
        """A driver task is alive."""
        return not self._finished.is_set()

    def start(self, run_id: str) -> None:
        """Start driving `run_id` (one run at a time: the journal's state says which)."""
        if self.running:
            raise RuntimeError("a run is already being driven")
        self._finished = anyio.Event()
        self._scope = anyio.CancelScope()
        self._tasks.start_soon(self._drive, run_id, self._scope, self._finished)

    async def shot_settled(self) -> None:
        """Return once no shot is near: a failed log stops the daemon only after it."""
        if self._driver is not None and self._driver.shot_is_near:
            await self._finished.wait()

    async def cancel(self) -> None:
        """Stop the driver at once and wait until it has stopped."""
        if self._scope is not None:
            self._scope.cancel()
        await self._finished.wait()

    async def _drive(self, run_id: str, scope: anyio.CancelScope, finished: anyio.Event) -> None:
        driver = RunDriver(self._journal, run_id, self._keys, self._clock, self._instruments)
        self._driver = driver
        try:
            with scope:
                await driver.drive()
        except ShotUnlogged as exc:
            logger.error("run %s stopped after its shot: %s", run_id, exc)
            self._storage_failed.set()
        except LogUnavailable as exc:
            logger.error("run %s stopped: the log refused an event: %s", run_id, exc)
            self._storage_failed.set()
        except Exception as exc:
            logger.exception("run %s failed", run_id)
            run = self._journal.state.runs.get(run_id)
            if run is not None and run.active:
                # Ended like any other run, so that followers waiting for `done` see it.
                await self._journal.append(
                    DonePayload(run_id, Phase.FAILED, f"internal error: {exc!r}", crn_results(run))
                )
        finally:
            self._driver = None
            finished.set()
