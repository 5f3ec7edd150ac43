"""What systemd hears from the daemon: STATUS= lines for people, watchdog pings, READY, STOPPING.

The words and the quiet window are pure (obsd/core/status_text.py); `SystemdReporter` polls the
folded state from the event loop and sends what changed.
"""

from __future__ import annotations

from typing import Final

from obsd.adapters.clock import Clock
from obsd.adapters.systemd import Notifier
from obsd.core.status_text import in_quiet_window, status_line, true_now_ns
from obsd.core.timing import NS
from obsd.daemon.journal import Journal

# `systemctl status` is read by people: one update a second follows a countdown closely enough,
# and polling the folded state that often costs next to nothing.
STATUS_EVERY_S: Final = 1.0


class SystemdReporter:
    """Sends READY/STATUS/WATCHDOG/STOPPING for one daemon, from its event loop."""

    def __init__(self, notifier: Notifier, journal: Journal, clock: Clock) -> None:
        self._notifier = notifier
        self._journal = journal
        self._clock = clock
        watchdog_s = notifier.watchdog_s
        # sd_watchdog_enabled(3) advises pinging at half the interval.
        self._ping_every_s = watchdog_s / 2 if watchdog_s else None
        self._last_status: str | None = None

    def _true_now_ns(self) -> int:
        return true_now_ns(self._journal.state, self._clock.wall_ns())

    def current_status(self) -> str:
        """The status line as of now."""
        damage = self._journal.log.damage
        return status_line(
            self._journal.state, self._true_now_ns(), None if damage is None else str(damage)
        )

    def ready(self) -> None:
        """The log is replayed and the socket accepts connections."""
        self._last_status = self.current_status()
        self._notifier.ready(self._last_status)
        if self._ping_every_s is not None:
            # A long replay may have used much of WatchdogSec: the count starts afresh here.
            self._notifier.watchdog()

    def stopping(self, reason: str) -> None:
        """Shutdown has begun."""
        self._notifier.stopping(f"stopping: {reason}")

    async def run(self) -> None:
        """Update STATUS= when it changes (about once a second) and ping the watchdog."""
        if not self._notifier.enabled:
            return
        tick = min(STATUS_EVERY_S, self._ping_every_s or STATUS_EVERY_S)
        clock = self._clock
        last_ping = clock.mono_ns() / NS
        while True:
            await clock.sleep_until(clock.mono_ns() + int(tick * NS))
            if in_quiet_window(self._journal.state, self._true_now_ns()):
                continue
            now = clock.mono_ns() / NS
            if self._ping_every_s is not None and now - last_ping >= self._ping_every_s - tick / 2:
                self._notifier.watchdog()
                last_ping = now
            text = self.current_status()
            if text != self._last_status:
                self._notifier.status(text)
                self._last_status = text
