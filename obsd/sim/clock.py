"""The simulator's clocks: true time, the server's own skewed clock, and its cached Date."""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import formatdate

from obsd.core.timing import NS


def cached_date_second(server_ns: int, phase_ns: int) -> int:
    """The epoch second a Date cache ticking at `phase_ns` into each second shows at `server_ns`.

    The cache is refreshed once a second, `phase_ns` after each second of the server's clock
    begins, with that clock's current second; so it changes to second S at S + phase. A negative
    phase models a ticker that runs ahead of the second (the next second shows early).
    """
    return (server_ns - phase_ns) // NS


def http_date(epoch_second: int) -> str:
    """An IMF-fixdate such as `Tue, 03 Feb 2026 12:00:00 GMT`."""
    return formatdate(epoch_second, usegmt=True)


class SimClock:
    """True time (local clock + offset) and the server's own clock (true + skew)."""

    def __init__(
        self,
        wall_clock_ns: Callable[[], int],
        offset_s: float,
        skew_s: float,
        date_phase_s: float,
        step_at_s: float | None = None,
        step_s: float = 0.0,
    ) -> None:
        self._wall_clock_ns = wall_clock_ns
        self._offset_ns = round(offset_s * NS)
        self._skew_ns = round(skew_s * NS)
        self._phase_ns = round(date_phase_s * NS)
        self._step_at_ns = None if step_at_s is None else round(step_at_s * NS)
        self._step_ns = round(step_s * NS)

    @property
    def reads_system_clock(self) -> bool:
        """Whether the wall clock is the system's, the one the kernel's packet stamps use."""
        return self._wall_clock_ns is time.time_ns

    def true_ns(self) -> int:
        """The simulator's true time now, in epoch nanoseconds (stepped once, if scripted)."""
        return self.true_at(self._wall_clock_ns())

    def true_at(self, wall_ns: int) -> int:
        """True time when the wall clock read `wall_ns`."""
        true = wall_ns + self._offset_ns
        if self._step_at_ns is not None and true >= self._step_at_ns:
            true += self._step_ns
        return true

    def server_ns(self, true_ns: int) -> int:
        """What the server's own clock reads at true time `true_ns`."""
        return true_ns + self._skew_ns

    def date_header(self) -> str:
        """The `Date` header value the server sends now, from its cached clock."""
        return http_date(cached_date_second(self.server_ns(self.true_ns()), self._phase_ns))
