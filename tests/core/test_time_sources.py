"""Samples and the polite schedule, fed with plain exchanges (no network)."""

from __future__ import annotations

from obsd.core.ntp_packet import Rejected, encode_query
from obsd.core.time_sources import (
    FILTER_SIZE,
    LOCAL_PRECISION_NS,
    MAX_RATE_BACKOFF_NS,
    MIN_QUERY_INTERVAL_NS,
    RATE_BACKOFF_NS,
    REFUSED_REST_NS,
    Exchange,
    Sample,
    TimeSources,
    Verdict,
    growth_ns,
    read_exchange,
)
from obsd.core.timing import MS, NS
from obsd.sim import NtpBehaviour
from obsd.sim.ntp import parse_query, reply_for

COOKIE = 42
MONO = 5_000 * NS
WALL = 1_796_115_600 * NS
# True time is 2.5 s ahead of the wall clock.
TRUE_AT_MONO = WALL + 2_500 * MS


HONEST = NtpBehaviour()


def exchange(
    behaviour: NtpBehaviour = HONEST,
    *,
    sent: int = MONO,
    round_trip: int = MS,
    turnaround: int = 0,
    source: str = "a",
) -> Exchange:
    """What an exchange with a simulated server looks like to the adapter."""
    query = parse_query(encode_query(COOKIE))
    assert query is not None
    true_mid = TRUE_AT_MONO + (sent - MONO) + round_trip // 2
    data = reply_for(behaviour, query, true_mid - turnaround // 2, true_mid + turnaround // 2)
    received = sent + round_trip
    return Exchange(source, COOKIE, sent, received, WALL + (received - MONO), data, "silence")


def test_offset_is_true_minus_monotonic_and_the_bound_is_half_the_delay_plus_distances() -> None:
    sample = read_exchange(exchange(round_trip=4 * MS, turnaround=MS))
    assert isinstance(sample, Sample)
    assert abs(sample.offset_ns - (TRUE_AT_MONO - MONO)) <= 1, "NTP stamps resolve 0.23 ns"
    assert sample.delay_ns == 3 * MS
    # Half the delay, the simulator's root dispersion (1/65536 s), its precision (2^-20 s),
    # and our own reading precision.
    assert sample.error_ns == 3 * MS // 2 + (NS >> 16) + (NS >> 20) + LOCAL_PRECISION_NS
    assert abs(sample.wall_offset_ns - 2_500 * MS) <= 1, "as operators read an offset"


def test_the_bound_grows_15_us_per_second_with_age() -> None:
    sample = read_exchange(exchange())
    assert isinstance(sample, Sample)
    assert sample.error_at(sample.taken_mono_ns + 10 * NS) == sample.error_ns + 150_000
    assert growth_ns(-NS) == 0


def test_a_turnaround_longer_than_the_round_trip_is_refused() -> None:
    refused = read_exchange(exchange(round_trip=MS, turnaround=2 * MS))
    assert isinstance(refused, Rejected) and "turnaround" in refused.reason


def test_silence_is_no_answer_and_is_kept_as_the_servers_verdict() -> None:
    sources = TimeSources()
    sources.record(exchange(NtpBehaviour(kind="silent")))
    reading = sources.reading("a", MONO)
    assert reading.sample is None and reading.verdict == Verdict.NO_ANSWER
    assert reading.detail == "silence"


def test_a_server_is_due_again_only_two_seconds_after_its_last_query() -> None:
    sources = TimeSources()
    assert sources.due(("a", "b"), MONO) == ["a", "b"]
    sources.record(exchange())
    assert sources.due(("a", "b"), MONO + MIN_QUERY_INTERVAL_NS - 1) == ["b"]
    assert sources.due(("a", "b"), MONO + MIN_QUERY_INTERVAL_NS) == ["a", "b"]
    assert sources.queries("a") == 1


def test_rate_kisses_double_the_rest_up_to_a_cap_and_an_answer_resets_it() -> None:
    sources = TimeSources()
    kiss = NtpBehaviour(kind="kiss", kiss_code="RATE")
    sent = MONO
    rests = []
    for _ in range(6):
        sources.record(exchange(kiss, sent=sent))
        when = next(
            t for t in range(sent, sent + 2 * MAX_RATE_BACKOFF_NS, NS) if sources.due(("a",), t)
        )
        rests.append((when - sent) // NS)
        sent = when
    assert rests == [64, 128, 256, 512, 1024, 1024]
    assert sources.reading("a", sent).verdict == Verdict.KISS
    sources.record(exchange(sent=sent))
    sources.record(exchange(kiss, sent=sent + 10 * NS))
    assert not sources.due(("a",), sent + 10 * NS + RATE_BACKOFF_NS - 1)


def test_deny_leaves_the_server_alone_for_a_day() -> None:
    sources = TimeSources()
    sources.record(exchange(NtpBehaviour(kind="kiss", kiss_code="DENY")))
    assert sources.due(("a",), MONO + REFUSED_REST_NS - 1) == []
    assert "not asked again today" in (sources.reading("a", MONO).detail or "")


def test_the_filter_picks_the_least_error_now_and_keeps_eight() -> None:
    sources = TimeSources()
    sources.record(exchange(round_trip=10 * MS, sent=MONO))
    sources.record(exchange(round_trip=2 * MS, sent=MONO + 3 * NS))
    sources.record(exchange(round_trip=6 * MS, sent=MONO + 6 * NS))
    best = sources.reading("a", MONO + 7 * NS).sample
    assert best is not None and best.delay_ns == 2 * MS
    # Hours later the old low-delay sample has grown past a fresh, slower one.
    late = MONO + 3000 * NS
    sources.record(exchange(round_trip=30 * MS, sent=late))
    fresh = sources.reading("a", late + 30 * MS).sample
    assert fresh is not None and fresh.delay_ns == 30 * MS


def test_the_filter_forgets_all_but_the_last_eight() -> None:
    sources = TimeSources()
    sources.record(exchange(round_trip=MS // 10))
    for index in range(FILTER_SIZE):
        sources.record(exchange(round_trip=5 * MS, sent=MONO + (index + 1) * 3 * NS))
    best = sources.reading("a", MONO + 30 * NS).sample
    assert best is not None and best.delay_ns == 5 * MS, "the best one is gone"


def test_forgetting_samples_after_a_jump_leaves_only_fresh_ones() -> None:
    sources = TimeSources()
    sources.record(exchange())
    sources.forget_samples()
    reading = sources.reading("a", MONO + NS)
    assert reading.sample is None


def test_a_new_sample_that_contradicts_the_kept_ones_replaces_them() -> None:
    """True time stepped against the local clocks: the older, tighter samples are stale."""
    sources = TimeSources()
    sources.record(exchange(round_trip=MS // 10))
    stepped = exchange(round_trip=5 * MS, sent=MONO + 3 * NS)
    shift = 2 * NS  # as if true time had jumped 2 s between the two queries
    assert stepped.data is not None
    query = parse_query(encode_query(COOKIE))
    assert query is not None
    true_mid = TRUE_AT_MONO + 3 * NS + shift + 5 * MS // 2
    stepped = Exchange(
        "a",
        COOKIE,
        MONO + 3 * NS,
        MONO + 3 * NS + 5 * MS,
        WALL,
        reply_for(HONEST, query, true_mid, true_mid),
    )
    sources.record(stepped)
    best = sources.reading("a", MONO + 4 * NS).sample
    assert best is not None and best.delay_ns == 5 * MS
    assert abs(best.offset_ns - (TRUE_AT_MONO - MONO + shift)) <= 1
