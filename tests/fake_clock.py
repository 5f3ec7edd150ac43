"""A clock for in-process tests whose waits jump instead of passing (like trio's MockClock):
hours of schedule run in milliseconds. It implements obsd.adapters.clock.Clock.

It also keeps the true time the world outside runs on (OBS, NTP servers), which a test can
move against the daemon's clocks: a stepped system clock, a paused VM.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import anyio.lowlevel

from obsd.core.timing import NS

# Tue, 01 Dec 2026 09:00:00 UTC on this clock's wall, when a test starts it.
START_WALL_NS: Final = 1_796_115_600 * NS


class FakeClock:
    """Monotonic and wall time that move only when something waits (or a test says so)."""

    def __init__(self, wall_ns: int = START_WALL_NS, true_offset_ns: int = 0) -> None:
        self._mono_ns = 1_000 * NS
        self._wall_offset_ns = wall_ns - self._mono_ns
        self._true_offset_ns = self._wall_offset_ns + true_offset_ns
        self._pending: list[tuple[int, Callable[[], None]]] = []
        self.waits: list[int] = []

    def mono_ns(self) -> int:
        return self._mono_ns

    def wall_ns(self) -> int:
        return self._mono_ns + self._wall_offset_ns

    def true_ns(self) -> int:
        """True time, as OBS and honest NTP servers know it (not a part of the Clock protocol)."""
        return self._mono_ns + self._true_offset_ns

    def step_wall(self, seconds: float) -> None:
        """Step the system clock (as chrony or a hypervisor agent would)."""
        self._wall_offset_ns += round(seconds * NS)

    def step_true(self, seconds: float) -> None:
        """Move true time against both local clocks (as a paused or migrated VM sees it)."""
        self._true_offset_ns += round(seconds * NS)

    def when(self, mono_ns: int, action: Callable[[], None]) -> None:
        """Do `action` once the monotonic clock reaches `mono_ns`."""
        self._pending.append((mono_ns, action))

    def _move_to(self, mono_ns: int) -> None:
        for at, action in sorted(self._pending, key=lambda p: p[0]):
            if at <= mono_ns:
                self._mono_ns = max(self._mono_ns, at)
                self._pending.remove((at, action))
                action()
        self._mono_ns = max(self._mono_ns, mono_ns)

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass."""
        self._move_to(self._mono_ns + round(seconds * NS))

    async def sleep_until(self, mono_ns: int) -> None:
        """Jump to `mono_ns` (never backwards), and let other tasks run."""
        self.waits.append(mono_ns - self._mono_ns)
        self._move_to(mono_ns)
        await anyio.lowlevel.checkpoint()

    async def arrive_at(self, mono_ns: int) -> None:
        """Exactly at `mono_ns`."""
        await self.sleep_until(mono_ns)
