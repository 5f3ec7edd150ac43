"""Which time to believe, sans I/O: intersect the sources, reject falsetickers, bound the error.

Every source gives an interval that holds true time if the source is honest: its offset plus or
minus its error bound. Marzullo's intersection (as in RFC 5905's clock-select) finds the
interval holding every point a majority of the sources shares; a minority outside it is named
falseticker.
The estimate is that interval: its middle dates events, its *lower* edge plans the shot, so
that whatever the honest majority says, the shot is not early. With no majority, or when OBS's
own Date header contradicts the majority, the interval widens to everything still credible:
the shot waits for the latest credible instant instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import msgspec

from obsd.core.time_sources import SYSTEM_CLOCK, Reading, Sample, Verdict, growth_ns
from obsd.core.timing import MS, NS, ClockMap

# The system clock may stand alone only when the kernel bounds its error this tightly: beyond
# it a shot would be late by more than a busy opening minute forgives.
MAX_SYSTEM_CLOCK_ERROR_NS: Final = 100 * MS
# OBS's Date header comes from a cached clock whose second ticks over between -20 and +140 ms
# of the true second (obs-facts.md), and that clock is within ~20 ms of true time: a header
# showing second D was written at a true time within [D - EARLY, D + 1 + LATE].
DATE_EARLY_NS: Final = 50 * MS
DATE_LATE_NS: Final = 200 * MS
# Beyond this the header cannot be explained by its cache, and is a clock conflict.
DATE_TOLERANCE_NS: Final = 1500 * MS
# The system clock may drift against the monotonic one only by the kernel's slew (at most
# 500 ppm) plus this: more is a step or a paused VM, and the estimate must be taken again.
JUMP_NS: Final = 5 * MS
MAX_SLEW_PPM: Final = 500


class TimeStatus(StrEnum):
    """How far the time estimate can be trusted."""

    AGREED = "agreed"  # a majority of servers agrees, and OBS's Date does not contradict it
    CONFLICT = "conflict"  # no majority, or OBS's Date contradicts it: the latest credible
    SYSTEM_CLOCK = "system_clock"  # no server answered; the kernel vouches for its clock
    OBS_DATE = "obs_date"  # only OBS's Date header: the shot waits for its latest instant
    NONE = "none"  # nothing trustworthy: no shot can be planned


class KernelClock(msgspec.Struct, frozen=True):
    """The kernel's view of its own clock (adjtimex): synchronised, and how well."""

    synchronised: bool
    max_error_us: int | None
    est_error_us: int | None
    problem: str | None = None  # why the view could not be read


class SourceView(msgspec.Struct, frozen=True):
    """One source as an operator sees it: its verdict and its numbers."""

    source: str
    verdict: Verdict
    offset_ms: float | None = None  # how far true time is ahead of the system clock
    delay_ms: float | None = None
    error_ms: float | None = None
    stratum: int | None = None
    detail: str | None = None


class DateProbe(msgspec.Struct, frozen=True):
    """One answer from OBS: when it was asked and answered (monotonic), and its Date (s)."""

    sent_mono_ns: int
    received_mono_ns: int
    date_epoch_s: int


class TimeEstimate(msgspec.Struct, frozen=True):
    """True time against the monotonic clock, as an interval: [offset - error, offset + error]."""

    status: TimeStatus
    ref_mono_ns: int
    offset_ns: int | None  # true - mono, the middle of the interval
    error_ns: int | None  # half the interval's width at ref_mono_ns
    sources: list[SourceView]
    ref_wall_ns: int  # the system clock at ref_mono_ns
    date_offset_ns: int | None = None  # OBS's Date (mid-second) - the estimate
    conflict: str | None = None

    @property
    def trusted(self) -> bool:
        """Whether a shot may be planned on this estimate."""
        return self.offset_ns is not None

    @property
    def wall_offset_ns(self) -> int | None:
        """How far true time is ahead of the system clock."""
        if self.offset_ns is None:
            return None
        return self.ref_mono_ns + self.offset_ns - self.ref_wall_ns

    def wall_jumped(self, mono_ns: int, wall_ns: int) -> bool:
        """Whether the system clock moved against the monotonic one since the estimate."""
        drift = (wall_ns - mono_ns) - (self.ref_wall_ns - self.ref_mono_ns)
        allowed = JUMP_NS + max(0, mono_ns - self.ref_mono_ns) * MAX_SLEW_PPM // 1_000_000
        return abs(drift) > allowed

    def clock(self) -> ClockMap | None:
        """The monotonic-to-true mapping at the middle of the interval."""
        if self.offset_ns is None:
            return None
        return ClockMap(self.ref_mono_ns, self.ref_mono_ns + self.offset_ns)

    def margin_at(self, mono_ns: int) -> int:
        """How far the lower edge of true time trails the estimate at `mono_ns`."""
        return (self.error_ns or 0) + growth_ns(mono_ns - self.ref_mono_ns)


def system_clock_reading(kernel: KernelClock, wall_ns: int, mono_ns: int) -> Reading:
    """The system clock as a source: usable only when the kernel says it is synchronised."""
    if kernel.problem is not None:
        return Reading(SYSTEM_CLOCK, None, Verdict.UNSYNCHRONISED, kernel.problem)
    if not kernel.synchronised or kernel.max_error_us is None:
        return Reading(SYSTEM_CLOCK, None, Verdict.UNSYNCHRONISED, "the kernel says unsynchronised")
    error = kernel.max_error_us * 1000
    if error > MAX_SYSTEM_CLOCK_ERROR_NS:
        return Reading(
            SYSTEM_CLOCK,
            None,
            Verdict.UNSYNCHRONISED,
            f"the kernel bounds its error at {error / MS:.0f} ms",
        )
    sample = Sample(SYSTEM_CLOCK, wall_ns - mono_ns, 0, error, mono_ns, 0, 0)
    return Reading(SYSTEM_CLOCK, sample)


def intersection(intervals: list[tuple[int, int]]) -> tuple[int, int] | None:
    """Marzullo's intersection at the majority: from the lowest to the highest point that more
    than half of the intervals share (None: no point is shared by a majority).

    Not RFC 5905's "fewest falsetickers first": that can settle on a point all intervals touch
    at their edges, which a liar overlapping the honest ones at their far side pulls away from
    true time. Every point an honest majority shares is in this interval, true time with them.
    """
    edges = sorted([(low, -1) for low, _ in intervals] + [(high, 1) for _, high in intervals])
    need = len(intervals) // 2 + 1
    low = _first_reaching(need, edges, 1)
    high = _first_reaching(need, list(reversed(edges)), -1)
    if low is None or high is None or low > high:
        return None
    return low, high


def _first_reaching(need: int, edges: list[tuple[int, int]], sign: int) -> int | None:
    """Walk the edges; the first value at which `need` intervals are open."""
    open_now = 0
    for value, kind in edges:
        open_now -= kind * sign
        if open_now >= need:
            return value
    return None


def date_interval(probes: list[DateProbe]) -> tuple[int, int] | None:
    """Where OBS's Date headers put true - mono: the newest probes, as far as they agree.

    Walking back from the newest, each probe narrows the interval; the first that cannot
    meet it is from before the clocks moved against each other, and it and all older ones
    are left out.
    """
    low, high = None, None
    for probe in reversed(probes):
        second = probe.date_epoch_s * NS
        this_low = second - DATE_EARLY_NS - probe.received_mono_ns
        this_high = second + NS + DATE_LATE_NS - probe.sent_mono_ns
        if low is not None and high is not None:
            if max(low, this_low) > min(high, this_high):
                break
            this_low, this_high = max(low, this_low), min(high, this_high)
        low, high = this_low, this_high
    return None if low is None or high is None else (low, high)


@dataclass(frozen=True, slots=True)
class _Interval:
    reading: Reading
    sample: Sample
    low: int
    high: int


def select(
    servers: list[Reading],
    system: Reading,
    now_mono_ns: int,
    now_wall_ns: int,
    date: tuple[int, int] | None = None,
) -> TimeEstimate:
    """The estimate of true time at `now_mono_ns` from every source's reading."""
    spans = [
        _Interval(r, r.sample, r.sample.offset_ns - e, r.sample.offset_ns + e)
        for r in servers
        if r.sample is not None
        for e in [r.sample.error_at(now_mono_ns)]
    ]
    verdicts: dict[str, Verdict] = {}
    conflict = None
    # What OBS's Date is compared with: the servers' own interval, before any widening.
    servers_middle = None
    if spans:
        status, interval, conflict, servers_middle = _majority(spans, verdicts, date)
    elif system.sample is not None:
        status = TimeStatus.SYSTEM_CLOCK
        error = system.sample.error_at(now_mono_ns)
        interval = (system.sample.offset_ns - error, system.sample.offset_ns + error)
        verdicts[SYSTEM_CLOCK] = Verdict.CHOSEN
    elif date is not None:
        status, interval = TimeStatus.OBS_DATE, date
    else:
        status, interval = TimeStatus.NONE, None
    views = [_view(r, verdicts, now_mono_ns) for r in [*servers, system]]
    if interval is None:
        return TimeEstimate(status, now_mono_ns, None, None, views, now_wall_ns)
    low, high = interval
    offset = (low + high) // 2
    compared = offset if servers_middle is None else servers_middle
    date_offset = None if date is None else (date[0] + date[1]) // 2 - compared
    return TimeEstimate(
        status=status,
        ref_mono_ns=now_mono_ns,
        offset_ns=offset,
        error_ns=(high - low + 1) // 2,
        sources=views,
        ref_wall_ns=now_wall_ns,
        date_offset_ns=date_offset,
        conflict=conflict,
    )


def _majority(
    spans: list[_Interval], verdicts: dict[str, Verdict], date: tuple[int, int] | None
) -> tuple[TimeStatus, tuple[int, int], str | None, int]:
    """The majority's interval and each server's verdict; on a conflict, the wider interval.

    Last comes the middle of what the servers alone say, which OBS's Date is compared with.
    """
    shared = intersection([(s.low, s.high) for s in spans])
    if shared is not None:
        true = [s for s in spans if s.low <= shared[1] and s.high >= shared[0]]
        chosen = min(true, key=lambda s: s.high - s.low)
        for span in spans:
            verdicts[span.reading.source] = Verdict.FALSETICKER
        for span in true:
            verdicts[span.reading.source] = Verdict.TRUECHIMER
        verdicts[chosen.reading.source] = Verdict.CHOSEN
        middle = (shared[0] + shared[1]) // 2
        if date is None or _agrees_with_date(shared, date):
            return TimeStatus.AGREED, shared, None, middle
        disagreement = ((date[0] + date[1]) // 2 - middle) / NS
        return (
            TimeStatus.CONFLICT,
            _hull([shared, date]),
            f"OBS's Date header disagrees with the NTP majority by {disagreement:+.1f} s",
            middle,
        )
    for span in spans:
        verdicts[span.reading.source] = Verdict.CONFLICTING
    credible = spans
    if date is not None:
        credible = [s for s in spans if _agrees_with_date((s.low, s.high), date)] or spans
    hull = _hull([(s.low, s.high) for s in credible])
    middle = (hull[0] + hull[1]) // 2
    if date is not None and credible is spans:
        hull = _hull([hull, date])
    spread = (max(s.sample.offset_ns for s in spans) - min(s.sample.offset_ns for s in spans)) / NS
    sided = (
        ""
        if credible is spans
        else "; OBS's Date header sides with " + ", ".join(s.reading.source for s in credible)
    )
    return (
        TimeStatus.CONFLICT,
        hull,
        f"no majority of the {len(spans)} answering servers agrees "
        f"(offsets spread over {spread:.3f} s){sided}",
        middle,
    )


def _agrees_with_date(interval: tuple[int, int], date: tuple[int, int]) -> bool:
    """Whether the middle of the Date header's interval is within tolerance of `interval`."""
    middle = (date[0] + date[1]) // 2
    return interval[0] - DATE_TOLERANCE_NS <= middle <= interval[1] + DATE_TOLERANCE_NS


def _hull(intervals: list[tuple[int, int]]) -> tuple[int, int]:
    return min(low for low, _ in intervals), max(high for _, high in intervals)


def _view(reading: Reading, verdicts: dict[str, Verdict], now_ns: int) -> SourceView:
    sample = reading.sample
    verdict = verdicts.get(reading.source, reading.verdict or Verdict.UNUSED)
    if sample is None:
        return SourceView(reading.source, verdict, detail=reading.detail)
    return SourceView(
        source=reading.source,
        verdict=verdict,
        offset_ms=round(sample.wall_offset_ns / MS, 3),
        delay_ms=round(sample.delay_ns / MS, 3),
        error_ms=round(sample.error_at(now_ns) / MS, 3),
        stratum=sample.stratum or None,
        detail=reading.detail,
    )
