"""A clock for in-process tests whose waits jump instead of passing (like trio's MockClock):
hours of schedule run in milliseconds. It implements obsd.adapters.clock.Clock."""

from __future__ import annotations

from typing import Final

import anyio.lowlevel

from obsd.core.timing import NS

# Tue, 01 Dec 2026 09:00:00 UTC on this clock's wall, when a test starts it.
START_WALL_NS: Final = 1_796_115_600 * NS


class FakeClock:
    """Monotonic and wall time that move only when something waits (or a test says so)."""

    def __init__(self, wall_ns: int = START_WALL_NS) -> None:
        self._mono_ns = 1_000 * NS
        self._wall_offset_ns = wall_ns - self._mono_ns
        self.waits: list[int] = []

    def mono_ns(self) -> int:
        return self._mono_ns

    def wall_ns(self) -> int:
        return self._mono_ns + self._wall_offset_ns

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass."""
        self._mono_ns += round(seconds * NS)

    async def sleep_until(self, mono_ns: int) -> None:
        """Jump to `mono_ns` (never backwards), and let other tasks run."""
        self.waits.append(mono_ns - self._mono_ns)
        self._mono_ns = max(self._mono_ns, mono_ns)
        await anyio.lowlevel.checkpoint()

    async def arrive_at(self, mono_ns: int) -> None:
        """Exactly at `mono_ns`."""
        await self.sleep_until(mono_ns)
