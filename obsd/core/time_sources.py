"""Time sources, sans I/O: NTP samples with error bounds, the polite query schedule, the filter.

Offsets here are of true time against the *monotonic* clock (true = mono + offset), the clock
the daemon waits on: a step of the system clock between two samples cannot bend the estimate.
Every sample carries an error bound that grows with its age at the frequency tolerance RFC 5905
assumes of any clock, so an old sample competes fairly with a fresh but slower one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

import msgspec

from obsd.core.ntp_packet import REFUSING_KISS_CODES, Rejected, decode_reply
from obsd.core.timing import NS

# RFC 5905's PHI: a clock's frequency may be off by 15 ppm, so a bound grows 15 µs per second.
PHI_PPM: Final = 15
# The local clock's reading resolution and cost, added to every bound.
LOCAL_PRECISION_NS: Final = 1_000
# Politeness: one query per server per 2 s at most (pool servers kiss clients that poll faster).
MIN_QUERY_INTERVAL_NS: Final = 2 * NS
# A RATE kiss doubles the server's rest from this, up to the cap (RFC 4330 §10).
RATE_BACKOFF_NS: Final = 64 * NS
MAX_RATE_BACKOFF_NS: Final = 1024 * NS
# DENY or RSTR: the server will not serve us; leave it alone for a day.
REFUSED_REST_NS: Final = 86_400 * NS
# The clock filter keeps the last few samples of each server (RFC 5905 keeps eight),
FILTER_SIZE: Final = 8
# and forgets them after an hour, when their grown bound (54 ms) no longer helps anyone.
MAX_SAMPLE_AGE_NS: Final = 3600 * NS
SYSTEM_CLOCK: Final = "system clock"


class Verdict(StrEnum):
    """What a time source was judged to be, as `chronyc sources` marks them."""

    CHOSEN = "chosen"  # a truechimer, and the tightest one
    TRUECHIMER = "truechimer"  # agrees with the majority
    FALSETICKER = "falseticker"  # outside the majority's interval
    CONFLICTING = "conflicting"  # no majority exists either way
    KISS = "kiss"  # kiss-o'-death: the server asked us to stop or slow down
    UNSYNCHRONISED = "unsynchronised"  # the server says its own clock is unsynchronised
    INVALID = "invalid"  # the reply failed a sanity test
    NO_ANSWER = "no_answer"  # silence, or a network error
    UNUSED = "unused"  # not needed or not usable (the system clock while servers answer)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One query as the NTP adapter saw it: monotonic send/receive, the wall clock, the bytes."""

    source: str
    cookie: int
    sent_mono_ns: int
    received_mono_ns: int
    received_wall_ns: int
    data: bytes | None  # None: no answer
    error: str | None = None  # why there was no answer


class Sample(msgspec.Struct, frozen=True):
    """True time against the monotonic clock, from one source, with its bound when taken."""

    source: str
    offset_ns: int  # true - mono
    delay_ns: int
    error_ns: int
    taken_mono_ns: int
    wall_offset_ns: int  # true - the system clock, as operators read an NTP offset
    stratum: int

    def error_at(self, mono_ns: int) -> int:
        """The error bound at `mono_ns`: the bound when taken plus the growth since."""
        return self.error_ns + growth_ns(mono_ns - self.taken_mono_ns)


def growth_ns(age_ns: int) -> int:
    """How far a bound grows over `age_ns` (never shrinks)."""
    return max(0, age_ns) * PHI_PPM // 1_000_000


def read_exchange(exchange: Exchange) -> Sample | Rejected:
    """The sample an exchange gives, or why it gives none (RFC 5905 §8 on-wire arithmetic)."""
    if exchange.data is None:
        return Rejected("invalid", exchange.error or "no answer")
    reply = decode_reply(exchange.data, exchange.cookie, exchange.received_wall_ns)
    if isinstance(reply, Rejected):
        return reply
    t1, t4 = exchange.sent_mono_ns, exchange.received_mono_ns
    t2, t3 = reply.receive_ns, reply.transmit_ns
    delay = (t4 - t1) - (t3 - t2)
    if delay < 0:
        return Rejected("invalid", "the server's turnaround is longer than our round trip")
    offset = ((t2 - t1) + (t3 - t4)) // 2
    return Sample(
        source=exchange.source,
        offset_ns=offset,
        delay_ns=delay,
        error_ns=delay // 2 + reply.root_distance_ns + reply.precision_ns + LOCAL_PRECISION_NS,
        taken_mono_ns=t4,
        wall_offset_ns=t4 + offset - exchange.received_wall_ns,
        stratum=reply.stratum,
    )


@dataclass(frozen=True, slots=True)
class Reading:
    """A source as selection sees it: its best sample now, or the verdict that it has none."""

    source: str
    sample: Sample | None
    verdict: Verdict | None = None  # set when there is no sample
    detail: str | None = None


@dataclass
class _Source:
    next_query_ns: int = 0
    rate_backoff_ns: int = 0
    queries: int = 0
    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=FILTER_SIZE))
    failure: Reading | None = None


_UNUSABLE_VERDICT: Final = {
    "invalid": Verdict.INVALID,
    "kiss": Verdict.KISS,
    "unsynchronised": Verdict.UNSYNCHRONISED,
}


class TimeSources:
    """What the daemon knows of each NTP server: when it may be asked next, and its samples."""

    def __init__(self) -> None:
        self._sources: dict[str, _Source] = {}

    def _get(self, source: str) -> _Source:
        return self._sources.setdefault(source, _Source())

    def due(self, servers: tuple[str, ...], now_ns: int) -> list[str]:
        """The servers that may be queried at `now_ns` without breaking the politeness rule."""
        return [s for s in servers if self._get(s).next_query_ns <= now_ns]

    def next_due(self, servers: tuple[str, ...]) -> int:
        """The earliest monotonic instant at which one of the servers may be queried."""
        return min(self._get(s).next_query_ns for s in servers)

    def queries(self, source: str) -> int:
        """How many queries this server has been sent."""
        return self._get(source).queries

    def record(self, exchange: Exchange) -> Sample | Rejected:
        """Take in one exchange: its sample joins the filter; a kiss makes the server rest."""
        state = self._get(exchange.source)
        state.queries += 1
        state.next_query_ns = exchange.sent_mono_ns + MIN_QUERY_INTERVAL_NS
        result = read_exchange(exchange)
        if isinstance(result, Sample):
            # A kept sample the new one contradicts (their intervals do not meet) says where
            # true time *was*: the clocks moved against each other since (a paused VM, a
            # step). Only what still agrees with the newest may compete with it.
            now = result.taken_mono_ns
            agreeing = [
                kept
                for kept in state.samples
                if abs(kept.offset_ns - result.offset_ns) <= kept.error_at(now) + result.error_ns
            ]
            state.samples.clear()
            state.samples.extend(agreeing)
            state.samples.append(result)
            state.rate_backoff_ns = 0
            state.failure = None
            return result
        if exchange.data is None:
            state.failure = Reading(exchange.source, None, Verdict.NO_ANSWER, result.reason)
            return result
        detail = result.reason
        if result.kiss_code == "RATE":
            state.rate_backoff_ns = min(
                MAX_RATE_BACKOFF_NS, max(RATE_BACKOFF_NS, 2 * state.rate_backoff_ns)
            )
            state.next_query_ns = exchange.sent_mono_ns + state.rate_backoff_ns
            detail += f"; resting {state.rate_backoff_ns // NS} s"
        elif result.kiss_code in REFUSING_KISS_CODES:
            state.next_query_ns = exchange.sent_mono_ns + REFUSED_REST_NS
            detail += "; not asked again today"
        state.failure = Reading(exchange.source, None, _UNUSABLE_VERDICT[result.unusable], detail)
        return result

    def forget_samples(self) -> None:
        """Drop every sample (the clocks jumped: they no longer say where true time is)."""
        for state in self._sources.values():
            state.samples.clear()

    def reading(self, source: str, now_ns: int) -> Reading:
        """The source's best sample at `now_ns` (least error), or why it has none."""
        state = self._get(source)
        fresh = [s for s in state.samples if now_ns - s.taken_mono_ns <= MAX_SAMPLE_AGE_NS]
        if fresh:
            return Reading(source, min(fresh, key=lambda s: s.error_at(now_ns)))
        if state.failure is not None:
            return state.failure
        return Reading(source, None, Verdict.NO_ANSWER, "not asked yet")

    def readings(self, servers: tuple[str, ...], now_ns: int) -> list[Reading]:
        """`reading` for every server, in the configured order."""
        return [self.reading(server, now_ns) for server in servers]
