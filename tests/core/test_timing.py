"""Fire-time arithmetic on plain integers."""

from datetime import UTC, datetime, timedelta, timezone

from obsd.core.timing import (
    MS,
    NS,
    ClockMap,
    NtpSample,
    best_sample,
    call_at,
    clock_map,
    epoch_ns,
    fire_at,
    spin_from,
)

T = 1_770_112_800 * NS


def test_the_lowest_delay_sample_wins() -> None:
    samples = [
        NtpSample("a", 5 * MS, 30 * MS),
        NtpSample("b", 2 * MS, 4 * MS),
        NtpSample("c", 9 * MS, 12 * MS),
    ]
    assert best_sample(samples) == samples[1]
    assert best_sample([]) is None


def test_the_clock_map_turns_monotonic_into_true_time_and_back() -> None:
    mapping = clock_map(mono_ns=1_000, wall_ns=T, offset_ns=-250 * MS)
    assert mapping == ClockMap(1_000, T - 250 * MS)
    assert mapping.true_ns(1_000 + NS) == T - 250 * MS + NS
    assert mapping.mono_ns(mapping.true_ns(123_456_789)) == 123_456_789


def test_the_default_fire_instant_is_target_plus_buffer_never_earlier() -> None:
    assert fire_at(T, 0.005, one_way_ns=20 * MS, aim_early_fraction=0.0) == T + 5 * MS
    assert fire_at(T, 0.0, one_way_ns=None, aim_early_fraction=0.5) == T


def test_aiming_early_leads_by_part_of_the_one_way_latency() -> None:
    assert fire_at(T, 0.005, one_way_ns=20 * MS, aim_early_fraction=0.5) == T - 5 * MS


def test_the_send_is_called_early_by_the_measured_send_delay() -> None:
    assert call_at(T, 350_000) == T - 350_000
    assert call_at(T, None) == T


def test_spinning_starts_2_ms_plus_a_fraction_before() -> None:
    assert spin_from(T, T - NS) == T - 2 * MS - 2 * MS
    assert spin_from(T, T) == T - 2 * MS


def test_epoch_ns_is_exact_to_the_microsecond() -> None:
    instant = datetime(2026, 2, 3, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=3)))
    assert (
        epoch_ns(instant)
        == int(datetime(2026, 2, 3, 11, tzinfo=UTC).timestamp()) * NS + 123_456_000
    )
