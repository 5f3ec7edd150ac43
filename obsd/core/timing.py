"""Fire-time arithmetic: the monotonic-to-true mapping, the fire instant, sleeping vs spinning.

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
# The send path is warmed (one loopback request each, ~1 ms) this long before send is called:
# after a quiet second a cold send takes ~0.4 ms longer than the warm samples its delay was
# measured on, and now and then 5-10 ms more. The first warm-up takes that stall well ahead;
# the second, close to the spin, leaves the path warm for the shot. Both end before the spin.
WARM_UP_LEADS_NS: Final = (25 * MS, 5 * MS)


def instant(epoch_ns: int) -> datetime:
    """Epoch nanoseconds as an aware UTC datetime (exact to the microsecond, truncated)."""
    seconds, nanos = divmod(epoch_ns, NS)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=nanos // 1000)


def epoch_ns(instant: datetime) -> int:
    """An aware datetime as integer epoch nanoseconds (exact to the microsecond)."""
    whole = int(instant.replace(microsecond=0).timestamp())
    return whole * NS + instant.microsecond * 1000


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


class ShotPlan(msgspec.Struct, frozen=True):
    """When the first POST leaves and when send is called for it (true ns), and why then."""

    fire_ns: int
    call_ns: int
    margin_ns: int  # the time estimate's error bound at the shot, added so it is never early
    lead_ns: int  # aimed this much earlier, only with aim_early_fraction


def plan_shot(
    target_ns: int,
    safety_buffer_s: float,
    margin_ns: int,
    one_way_ns: int | None,
    aim_early_fraction: float,
    send_delay_ns: int | None,
) -> ShotPlan:
    """The fire instant: by the estimate, the lower edge of true time is then past the opening.

    The safety buffer sits on top for what no bound covers (how long send takes this time
    against the fastest one measured). With `aim_early_fraction` > 0 (an explicit option) the shot
    leads by that part of the measured one-way latency, so it *arrives* closer to the opening.
    """
    lead = int((one_way_ns or 0) * aim_early_fraction)
    fire = target_ns + int(safety_buffer_s * NS) + margin_ns - lead
    # Send is called the measured send delay early, but never before the lower edge of true
    # time has passed the opening: a delay measured under load can overstate the path by more
    # than the buffer, and the bytes would then leave early.
    call = max(fire - (send_delay_ns or 0), target_ns + margin_ns - lead)
    return ShotPlan(fire, call, margin_ns, lead)


def spin_from(deadline_ns: int, now_ns: int) -> int:
    """When to stop sleeping and start spinning for `deadline_ns`."""
    remaining = max(0, deadline_ns - now_ns)
    return deadline_ns - SPIN_BASE_NS - int(remaining * SPIN_FRACTION)
