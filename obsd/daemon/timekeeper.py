"""The daemon's knowledge of true time: polite NTP rounds, the kernel's view, the selection.

One per daemon, shared by every run and op, so the politeness rule and the clock filter span
them all: a calibration right after another asks no server again within two seconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from obsd.adapters.clock import Clock
from obsd.core.clock_select import KernelClock, TimeEstimate, select, system_clock_reading
from obsd.core.time_sources import Exchange, TimeSources

# One query to each of these servers, all at once (in the servers' order).
NtpExchange = Callable[[list[str]], Awaitable[list[Exchange]]]


class TimeKeeper:
    """Asks the servers that are due, and judges every source against the others."""

    def __init__(
        self, clock: Clock, exchange: NtpExchange, kernel_clock: Callable[[], KernelClock]
    ) -> None:
        self._clock = clock
        self._exchange = exchange
        self._kernel_clock = kernel_clock
        self.sources = TimeSources()
        self.kernel: KernelClock | None = None

    def read_kernel(self) -> KernelClock:
        """The kernel's view of its clock now."""
        return self._kernel_clock()

    async def estimate(
        self, servers: tuple[str, ...], date: tuple[int, int] | None = None
    ) -> TimeEstimate:
        """A fresh estimate: query the servers that may be asked now, then select."""
        due = self.sources.due(servers, self._clock.mono_ns())
        if due:
            for exchange in await self._exchange(due):
                self.sources.record(exchange)
        self.kernel = self.read_kernel()
        mono, wall = self._clock.mono_ns(), self._clock.wall_ns()
        return select(
            self.sources.readings(servers, mono),
            system_clock_reading(self.kernel, wall, mono),
            mono,
            wall,
            date,
        )
