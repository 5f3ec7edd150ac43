"""Selecting true time from many sources, on plain intervals: majorities, liars, ties, OBS."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from obsd.core.clock_select import (
    DATE_TOLERANCE_NS,
    JUMP_NS,
    MAX_SYSTEM_CLOCK_ERROR_NS,
    DateProbe,
    KernelClock,
    TimeStatus,
    date_interval,
    intersection,
    select,
    system_clock_reading,
)
from obsd.core.time_advice import date_check, no_time_advice
from obsd.core.time_sources import SYSTEM_CLOCK, Reading, Sample, Verdict
from obsd.core.timing import MS, NS

NOW = 10_000 * NS
WALL = 1_796_115_600 * NS
TRUE = WALL - NOW + 40 * MS  # true - mono: true time is 40 ms ahead of the wall clock
UNSYNCED = system_clock_reading(KernelClock(False, 16_000_000, 16_000_000), WALL, NOW)


def server(
    name: str, offset_ms: float = 0.0, error_ms: float = 1.0, delay_ms: float = 2.0
) -> Reading:
    """A server whose best sample puts true - mono at TRUE + offset, within error."""
    sample = Sample(
        source=name,
        offset_ns=TRUE + round(offset_ms * MS),
        delay_ns=round(delay_ms * MS),
        error_ns=round(error_ms * MS),
        taken_mono_ns=NOW,
        wall_offset_ns=40 * MS + round(offset_ms * MS),
        stratum=2,
    )
    return Reading(name, sample)


def server_ns(name: str, offset_ns: int, error_ns: int) -> Reading:
    """A server whose best sample puts true - mono at TRUE + offset_ns, within error_ns."""
    sample = Sample(name, TRUE + offset_ns, 2 * error_ns, error_ns, NOW, offset_ns, 2)
    return Reading(name, sample)


def chosen(readings: list[Reading], date: tuple[int, int] | None = None):  # type: ignore[no-untyped-def]
    estimate = select(readings, UNSYNCED, NOW, WALL, date)
    return estimate, {v.source: v.verdict for v in estimate.sources}


def test_the_intersection_of_one_interval_is_itself() -> None:
    assert intersection([(1, 5)]) == (1, 5)


def test_touching_intervals_intersect_and_disjoint_pairs_do_not() -> None:
    assert intersection([(0, 5), (5, 9)]) == (5, 5)
    assert intersection([(0, 4), (5, 9)]) is None


@pytest.mark.parametrize("n", range(1, 9))
def test_any_minority_of_liars_is_outvoted_for_1_to_8_servers(n: int) -> None:
    liars = (n - 1) // 2
    readings = [server(f"h{i}", offset_ms=0.1 * i) for i in range(n - liars)]
    readings += [server(f"l{i}", offset_ms=10_000.0 + i, error_ms=0.01) for i in range(liars)]
    estimate, verdicts = chosen(readings)
    assert estimate.status == TimeStatus.AGREED
    assert estimate.offset_ns is not None and estimate.error_ns is not None
    low = estimate.offset_ns - estimate.error_ns
    assert low <= TRUE <= estimate.offset_ns + estimate.error_ns, "true time is inside"
    assert all(verdicts[f"l{i}"] == Verdict.FALSETICKER for i in range(liars))
    assert {verdicts[f"h{i}"] for i in range(n - liars)} <= {Verdict.CHOSEN, Verdict.TRUECHIMER}


def test_a_liar_with_the_lowest_delay_and_tightest_bound_is_still_a_falseticker() -> None:
    readings = [server("liar", -10_000, error_ms=0.01, delay_ms=0.02), server("a"), server("b")]
    estimate, verdicts = chosen(readings)
    assert verdicts == {
        "liar": Verdict.FALSETICKER,
        "a": Verdict.CHOSEN,
        "b": Verdict.TRUECHIMER,
        SYSTEM_CLOCK: Verdict.UNSYNCHRONISED,
    }
    assert estimate.wall_offset_ns == 40 * MS


@pytest.mark.parametrize(("honest", "liars"), [(1, 1), (2, 2), (3, 3), (4, 4)])
def test_a_tie_is_a_conflict_and_waits_for_the_latest_credible_instant(
    honest: int, liars: int
) -> None:
    readings = [server(f"h{i}") for i in range(honest)]
    readings += [server(f"l{i}", offset_ms=-10_000.0) for i in range(liars)]
    estimate, verdicts = chosen(readings)
    assert estimate.status == TimeStatus.CONFLICT
    assert set(verdicts.values()) - {Verdict.UNSYNCHRONISED} == {Verdict.CONFLICTING}
    assert estimate.offset_ns is not None and estimate.error_ns is not None
    # The lower edge is the liars' lower edge: a shot planned on it is late, never early.
    assert estimate.offset_ns - estimate.error_ns == TRUE - 10_000 * MS - MS
    assert estimate.conflict is not None and "no majority" in estimate.conflict


def test_the_estimate_is_the_shared_interval_tighter_than_any_one_source() -> None:
    estimate, _ = chosen([server("a", offset_ms=-0.5), server("b", offset_ms=0.5)])
    assert estimate.offset_ns == TRUE and estimate.error_ns == MS // 2, "each alone is ±1 ms"


def test_order_does_not_change_the_selection() -> None:
    readings = [server("a"), server("b", 0.3), server("c", 9_000), server("d", 0.6), server("e")]
    results = {
        (e.offset_ns, e.error_ns)
        for e in (chosen(list(p))[0] for p in itertools.permutations(readings))
    }
    assert len(results) == 1


def probe(date_s: int, sent_ns: int = NOW - MS, received_ns: int = NOW) -> DateProbe:
    return DateProbe(sent_ns, received_ns, date_s)


def test_the_date_header_places_true_time_within_its_cached_second() -> None:
    true_now_s = (TRUE + NOW) // NS
    low, high = date_interval([probe(true_now_s)]) or (0, 0)
    assert low <= TRUE <= high
    assert high - low < 1_300 * MS
    assert date_interval([]) is None


def test_a_date_header_within_tolerance_agrees() -> None:
    date = date_interval([probe((TRUE + NOW) // NS)])
    estimate, _ = chosen([server("a"), server("b")], date)
    assert estimate.status == TimeStatus.AGREED
    assert estimate.date_offset_ns is not None
    assert abs(estimate.date_offset_ns) <= DATE_TOLERANCE_NS


def test_a_majority_the_date_header_contradicts_is_a_conflict_that_waits_for_both() -> None:
    date = date_interval([probe((TRUE + NOW) // NS)])
    assert date is not None
    estimate, _ = chosen([server("a", 5_000), server("b", 5_000), server("c", 5_000)], date)
    assert estimate.status == TimeStatus.CONFLICT
    assert estimate.offset_ns is not None and estimate.error_ns is not None
    assert estimate.offset_ns - estimate.error_ns == date[0], "no earlier than OBS allows"
    assert estimate.conflict is not None and "Date header disagrees" in estimate.conflict
    # Judged against what the servers said, not against the interval the Date widened.
    assert date_check(estimate).startswith("OBS's Date header disagrees with the time estimate")


def test_the_date_header_sides_with_one_of_two_and_the_liar_is_dropped() -> None:
    date = date_interval([probe((TRUE + NOW) // NS)])
    estimate, _ = chosen([server("honest"), server("liar", -10_000)], date)
    assert estimate.status == TimeStatus.CONFLICT
    assert estimate.offset_ns == TRUE and estimate.error_ns == MS
    assert estimate.conflict is not None and estimate.conflict.endswith("sides with honest")


def test_only_a_synchronised_kernel_with_a_small_bound_may_stand_alone() -> None:
    good = system_clock_reading(KernelClock(True, 3_000, 1_000), WALL, NOW)
    estimate = select([], good, NOW, WALL)
    assert estimate.status == TimeStatus.SYSTEM_CLOCK
    assert estimate.offset_ns == WALL - NOW and estimate.error_ns == 3 * MS
    loose_us = MAX_SYSTEM_CLOCK_ERROR_NS // 1000 + 1
    for kernel in (
        KernelClock(False, 3_000, 1_000),
        KernelClock(True, loose_us, 1_000),
        KernelClock(False, None, None, problem="adjtimex was refused (Operation not permitted)"),
    ):
        estimate = select([], system_clock_reading(kernel, WALL, NOW), NOW, WALL)
        assert estimate.status == TimeStatus.NONE and not estimate.trusted
        assert estimate.clock() is None


def test_a_synchronised_kernel_is_unused_while_servers_answer() -> None:
    good = system_clock_reading(KernelClock(True, 3_000, 1_000), WALL, NOW)
    estimate = select([server("a")], good, NOW, WALL)
    assert {v.source: v.verdict for v in estimate.sources}[SYSTEM_CLOCK] == Verdict.UNUSED


def test_with_only_the_date_header_the_shot_waits_for_its_lower_edge() -> None:
    date = date_interval([probe((TRUE + NOW) // NS)])
    estimate = select([Reading("a", None, Verdict.NO_ANSWER, "silence")], UNSYNCED, NOW, WALL, date)
    assert estimate.status == TimeStatus.OBS_DATE and estimate.trusted
    assert date_check(estimate) == "only the Date header"


def test_nothing_trustworthy_says_what_to_do() -> None:
    estimate = select(
        [Reading("pool:123", None, Verdict.NO_ANSWER, "silence")], UNSYNCED, NOW, WALL
    )
    advice = no_time_advice(estimate, ("pool:123",))
    assert advice is not None
    assert advice.startswith("no trustworthy time: no NTP server answered (pool:123)")
    assert "the kernel says unsynchronised" in advice and "UDP port 123" in advice
    kissed = select([Reading("pool:123", None, Verdict.KISS, "DENY")], UNSYNCED, NOW, WALL)
    assert "no NTP server gave a usable answer" in (no_time_advice(kissed, ("pool:123",)) or "")


def test_a_jump_of_the_wall_clock_against_the_monotonic_one_is_seen() -> None:
    estimate, _ = chosen([server("a")])
    assert not estimate.wall_jumped(NOW + 60 * NS, WALL + 60 * NS)
    slewing = 60 * NS * 500 // 1_000_000  # the kernel's fastest slew is not a jump
    assert not estimate.wall_jumped(NOW + 60 * NS, WALL + 60 * NS + slewing)
    assert estimate.wall_jumped(NOW + NS, WALL + NS + JUMP_NS + NS // 2000 + 1)
    assert estimate.wall_jumped(NOW + NS, WALL + NS - 3 * NS)


def test_margins_grow_after_the_estimate_at_15_ppm() -> None:
    estimate, _ = chosen([server("a", error_ms=1.0)])
    assert estimate.margin_at(NOW) == MS
    assert estimate.margin_at(NOW + 100 * NS) == MS + 1_500_000


@given(
    honest=st.lists(
        st.tuples(st.integers(1, 50_000_000), st.floats(-1.0, 1.0)), min_size=1, max_size=5
    ),
    liars=st.lists(
        st.tuples(st.integers(-(10**10), 10**10), st.integers(1, 50_000_000)), max_size=4
    ),
)
def test_with_an_honest_majority_true_time_is_always_inside_the_estimate(
    honest: list[tuple[int, float]], liars: list[tuple[int, int]]
) -> None:
    """Whatever a minority claims, the lower edge never passes true time: never early."""
    liars = liars[: (len(honest) + len(liars) - 1) // 2][: len(honest) - 1]
    # Truncation keeps each honest offset within its own error of the truth.
    readings = [
        server_ns(f"h{i}", int(where * error), error) for i, (error, where) in enumerate(honest)
    ]
    readings += [server_ns(f"l{i}", lie, error) for i, (lie, error) in enumerate(liars)]
    estimate, _ = chosen(readings)
    assert estimate.offset_ns is not None and estimate.error_ns is not None
    assert estimate.offset_ns - estimate.error_ns <= TRUE + 1, "the lower edge is not past truth"
