"""What systemd hears from the daemon: STATUS= lines for people, watchdog pings, READY, STOPPING.

The words and the quiet window are pure (obsd/core/status_text.py); `SystemdReporter` polls the
folded state from the event loop and sends what changed.
"""

from __future__ import annotations

from typing import Final

from obsd.adapters.systemd import Notifier
from obsd.core.status_text import in_quiet_window, status_line
from obsd.core.timing import MS, NS
from obsd.daemon.service import Service

# `systemctl status` is read by people: one update a second follows a countdown closely enough,
# and polling the folded state that often costs next to nothing.
STATUS_EVERY_S: Final = 1.0


class SystemdReporter:
    """Sends READY/STATUS/WATCHDOG/STOPPING for one daemon, from its event loop."""

    def __init__(self, notifier: Notifier, service: Service) -> None:
        self._notifier = notifier
        self._service = service
        watchdog_s = notifier.watchdog_s
        # sd_watchdog_enabled(3) advises pinging at half the interval.
        self._ping_every_s = watchdog_s / 2 if watchdog_s else None
        self._last_status: str | None = None

    def _true_now_ns(self) -> int:
        """The wall clock corrected by the last NTP offset (countdowns match the engine's)."""
        calibration = self._service.state.calibration
        offset_ms = calibration.ntp_offset_ms if calibration is not None else None
        return self._service.clock.wall_ns() + int((offset_ms or 0.0) * MS)

    def current_status(self) -> str:
        """The status line as of now."""
        log = self._service.log
        damage = None
        if log.damage is not None:
            damage = (f"log damaged at {log.damage.segment} line {log.damage.line}: "
                      f"{log.damage.reason}")
        return status_line(self._service.state, self._true_now_ns(), damage)

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
        clock = self._service.clock
        last_ping = clock.mono_ns() / NS
        while True:
            await clock.sleep_until(clock.mono_ns() + int(tick * NS))
            if in_quiet_window(self._service.state, self._true_now_ns()):
                continue
            now = clock.mono_ns() / NS
            if self._ping_every_s is not None and now - last_ping >= self._ping_every_s - tick / 2:
                self._notifier.watchdog()
                last_ping = now
            text = self.current_status()
            if text != self._last_status:
                self._notifier.status(text)
                self._last_status = text
