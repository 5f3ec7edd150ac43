"""The tasks of the active runs: started by `start`, `watch_seat` or a resume; ended by `cancel`."""

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
from obsd.daemon.schedule_pages import SchedulePages
from obsd.daemon.token_refresher import Keys
from obsd.daemon.watch_driver import WatchDriver

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
    """Runs each active run's driver in the task group it was made for.

    At most one timed run (RunDriver) at a time, as the journal's state allows, and any number
    of watch runs (WatchDriver) beside it, which share one reader of the schedule pages.
    """

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
        self._pages = SchedulePages(clock, instruments.fetch_public)
        self._watch_posts = anyio.Lock()
        self._drives: dict[str, _Drive] = {}

    def running(self, run_id: str) -> bool:
        """A driver task of this run is alive."""
        return run_id in self._drives

    def start(self, run_id: str) -> None:
        """Start driving `run_id` (its kind, in the journal's state, says with which driver)."""
        if run_id in self._drives:
            raise RuntimeError(f"run {run_id} is already being driven")
        run = self._journal.state.runs[run_id]
        args = (self._journal, run_id, self._keys, self._clock, self._instruments)
        driver = (
            RunDriver(*args)
            if run.watch is None
            else WatchDriver(*args, self._pages, self._watch_posts)
        )
        drive = self._drives[run_id] = _Drive(driver, anyio.CancelScope(), anyio.Event())
        self._tasks.start_soon(self._drive, run_id, drive)

    async def shot_settled(self) -> None:
        """Return once no shot is near: a failed log stops the daemon only after it."""
        for drive in list(self._drives.values()):
            if isinstance(drive.driver, RunDriver) and drive.driver.shot_is_near:
                await drive.finished.wait()

    async def cancel(self, run_id: str) -> None:
        """Stop the run's driver at once and wait until it has stopped."""
        drive = self._drives.get(run_id)
        if drive is not None:
            drive.scope.cancel()
            await drive.finished.wait()

    async def _drive(self, run_id: str, drive: _Drive) -> None:
        try:
            with drive.scope:
                await drive.driver.drive()
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
            del self._drives[run_id]
            drive.finished.set()


@dataclass(frozen=True, slots=True)
class _Drive:
    """One run's driver task: the driver, the scope that cancels it, and its end."""

    driver: RunDriver | WatchDriver
    scope: anyio.CancelScope
    finished: anyio.Event
