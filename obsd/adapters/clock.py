"""The clocks the engine reads and waits on; tests may hand the engine another implementation."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator
from typing import Protocol

import anyio

from obsd.core.timing import NS, spin_from


class Clock(Protocol):
    """What the engine needs of time."""

    def mono_ns(self) -> int:
        """Monotonic nanoseconds (what waits are scheduled on)."""
        ...

    def wall_ns(self) -> int:
        """The system's wall clock, in epoch nanoseconds (NTP tells how far off it is)."""
        ...

    async def sleep_until(self, mono_ns: int) -> None:
        """Wake at about `mono_ns`, never noticeably early."""
        ...

    async def arrive_at(self, mono_ns: int) -> None:
        """Return as close to `mono_ns` as possible and never before it."""
        ...


class SystemClock:
    """The real clocks: sleep coarsely, then spin for the last ~2 ms (timing-notes.md)."""

    def mono_ns(self) -> int:
        """time.monotonic_ns()."""
        return time.monotonic_ns()

    def wall_ns(self) -> int:
        """time.time_ns()."""
        return time.time_ns()

    async def sleep_until(self, mono_ns: int) -> None:
        """anyio.sleep for the remaining time (it overshoots by ~0.1-1 ms, never undershoots)."""
        remaining = mono_ns - time.monotonic_ns()
        if remaining > 0:
            await anyio.sleep(remaining / NS)

    async def arrive_at(self, mono_ns: int) -> None:
        """Sleep to just before `mono_ns`, then busy-wait: < 1 µs median lateness."""
        await self.sleep_until(spin_from(mono_ns, time.monotonic_ns()))
        while time.monotonic_ns() < mono_ns:
            pass


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Hold the garbage collector off (a collection in the final window would move the shot)."""
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
