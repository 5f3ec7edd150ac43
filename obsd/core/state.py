"""The daemon's state as a pure fold of its event log: `apply(state, event) -> state`."""

from __future__ import annotations

import msgspec

from obsd.core.config import Config
from obsd.core.events import ConfigChanged, DaemonStarted, Event, LogCreated, LogRepaired


class DaemonState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the log says about the daemon, as of the last applied event."""

    log_id: str | None = None
    config: Config = Config()
    # How often the daemon has started on this log, and when it last did.
    starts: int = 0
    last_start: str | None = None
    repairs: int = 0

    @property
    def phase(self) -> str:
        """The registration phase; idle until the engine has runs to drive."""
        return "idle"


def apply(state: DaemonState, event: Event) -> DaemonState:
    """Fold one event into the state; events that change nothing return `state` itself."""
    replace = msgspec.structs.replace
    match event:
        case ConfigChanged(payload=payload):
            return replace(state, config=payload.config)
        case DaemonStarted(timestamp=timestamp):
            return replace(state, starts=state.starts + 1, last_start=timestamp)
        case LogCreated(payload=payload):
            return replace(state, log_id=payload.log_id)
        case LogRepaired():
            return replace(state, repairs=state.repairs + 1)
    return state
