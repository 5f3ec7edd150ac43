"""What both run drivers share: the run's record, read back from the journal, and its events."""

from __future__ import annotations

import msgspec

from obsd.core.events import DonePayload, Level, MessagePayload, PhaseChangedPayload
from obsd.core.phases import Phase
from obsd.core.policy import Stop
from obsd.core.runs import RunState, crn_results
from obsd.daemon.journal import Journal


class RunEvents:
    """One run's events, appended to the journal (which refuses any move the phases forbid)."""

    def __init__(self, journal: Journal, run_id: str) -> None:
        self._journal = journal
        self._run_id = run_id

    @property
    def run(self) -> RunState:
        """The run's record as of the last event."""
        return self._journal.state.runs[self._run_id]

    async def _emit(self, payload: msgspec.Struct, *, durable: bool = True) -> None:
        await self._journal.append(payload, durable=durable)

    async def _say(self, message: str, level: Level = "info") -> None:
        await self._emit(
            MessagePayload(message=message, level=level, run_id=self._run_id), durable=False
        )

    async def _enter(
        self, phase: Phase, reason: str | None = None, *, durable: bool = True
    ) -> None:
        if self.run.phase == phase:
            return
        await self._emit(PhaseChangedPayload(self._run_id, phase, reason), durable=durable)

    async def _finish(self, stop: Stop) -> None:
        await self._emit(DonePayload(self._run_id, stop.phase, stop.reason, crn_results(self.run)))
