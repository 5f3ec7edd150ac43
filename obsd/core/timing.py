"""Fire-time arithmetic: true time from NTP, the fire instant, and how long to sleep vs spin.

All values are integer nanoseconds. "True" time is UTC as NTP tells it; the local wall clock
may be off by `offset`, and the monotonic clock is what the daemon actually waits on, so a
step of the system clock during the wait cannot move the shot.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import msgspec

NS: Final = 1_000_000_000
MS: Final = 1_000_000
# Sleep-then-spin (timing-notes.md): wake this long plus a fraction of the remaining time
# before the deadline, then busy-wait; sleeps overshoot by ~0.1-0.3 ms plus ~0.1 %.
SPIN_BASE_NS: Final = 2 * MS
SPIN_FRACTION: Final = 0.002


def instant(epoch_ns: int) -> datetime:
    """Epoch nanoseconds as an aware UTC datetime (exact to the microsecond, truncated)."""
    seconds, nanos = divmod(epoch_ns, NS)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=nanos // 1000)


def epoch_ns(instant: datetime) -> int:
    """An aware datetime as integer epoch nanoseconds (exact to the microsecond)."""
    whole = int(instant.replace(microsecond=0).timestamp())
    return whole * NS + instant.microsecond * 1000


class NtpSample(msgspec.Struct, frozen=True):
    """One NTP exchange: the clock offset it implies and the round-trip delay it had."""

    server: str
    offset_ns: int
    delay_ns: int


class ClockMap(msgspec.Struct, frozen=True):
    """Maps the monotonic clock onto true time: true = true_ref + (mono - mono_ref)."""

    mono_ref_ns: int
    true_ref_ns: int

    def true_ns(self, mono_ns: int) -> int:
        """True time at a monotonic reading."""
        return self.true_ref_ns + (mono_ns - self.mono_ref_ns)

    def mono_ns(self, true_ns: int) -> int:
        """The monotonic reading at which true time reaches `true_ns`."""
        return self.mono_ref_ns + (true_ns - self.true_ref_ns)


def best_sample(samples: list[NtpSample]) -> NtpSample | None:
    """The lowest-delay sample: its offset error is bounded by half its delay (RFC 5905)."""
    return min(samples, key=lambda s: s.delay_ns, default=None)


def clock_map(mono_ns: int, wall_ns: int, offset_ns: int) -> ClockMap:
    """A mapping taken from simultaneous monotonic and wall readings and the NTP offset."""
    return ClockMap(mono_ref_ns=mono_ns, true_ref_ns=wall_ns + offset_ns)


def fire_at(
    target_ns: int, safety_buffer_s: float, one_way_ns: int | None, aim_early_fraction: float
) -> int:
    """The true instant the request should reach the wire: never before the opening by default.

    With `aim_early_fraction` > 0 (an explicit option) the shot leads by that part of the
    measured one-way latency, so it *arrives* closer to the opening.
    """
    return target_ns + int(safety_buffer_s * NS) - lead_for(one_way_ns, aim_early_fraction)


def lead_for(one_way_ns: int | None, aim_early_fraction: float) -> int:
    """How far before target + safety buffer the shot is aimed (0 unless asked for)."""
    return int((one_way_ns or 0) * aim_early_fraction)


def call_at(fire_ns: int, send_delay_ns: int | None) -> int:
    """When to call send so that the first byte leaves at `fire_ns`."""
    return fire_ns - (send_delay_ns or 0)


def spin_from(deadline_ns: int, now_ns: int) -> int:
    """When to stop sleeping and start spinning for `deadline_ns`."""
    remaining = max(0, deadline_ns - now_ns)
    return deadline_ns - SPIN_BASE_NS - int(remaining * SPIN_FRACTION)
