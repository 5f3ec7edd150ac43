"""What an op may use, and who asked: the narrow view of the daemon the handlers get."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from obsd.adapters.clock import Clock
from obsd.adapters.control_socket import Peer
from obsd.adapters.login_store import LoginStore
from obsd.adapters.token_store import TokenStore
from obsd.core.events import Actor
from obsd.core.protocol import Access
from obsd.core.state import DaemonState
from obsd.core.timing import NS
from obsd.daemon.instruments import Instruments
from obsd.daemon.journal import Journal
from obsd.daemon.notifications import Notifications
from obsd.daemon.runner import Runner


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request, and what they may do."""

    peer: Peer
    access: Access

    @property
    def actor(self) -> Actor:
        """The actor recorded on command events."""
        return Actor(uid=self.peer.uid, pid=self.peer.pid)


@dataclass(frozen=True, slots=True)
class Context:
    """The parts of a running daemon that the ops read and change."""

    journal: Journal
    tokens: TokenStore
    logins: LoginStore
    runner: Runner
    clock: Clock
    instruments: Instruments
    # When the daemon started, on the clock's monotonic scale, and how much it replayed then.
    started_mono_ns: int
    replayed_events: int
    instance: str | None
    notifications: Notifications

    @property
    def state(self) -> DaemonState:
        """The fold of every event so far."""
        return self.journal.state

    def now(self) -> datetime:
        """The wall clock as an aware datetime (configure and start judge targets by it)."""
        return datetime.fromtimestamp(self.clock.wall_ns() / NS, UTC)
