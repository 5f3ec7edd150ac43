"""Fire-time arithmetic on plain integers."""

from datetime import UTC, datetime, timedelta, timezone

from obsd.core.timing import MS, NS, ClockMap, ShotPlan, epoch_ns, plan_shot, spin_from

T = 1_770_112_800 * NS


def test_the_clock_map_turns_monotonic_into_true_time_and_back() -> None:
    mapping = ClockMap(mono_ref_ns=1_000, true_ref_ns=T - 250 * MS)
    assert mapping.true_ns(1_000 + NS) == T - 250 * MS + NS
    assert mapping.mono_ns(mapping.true_ns(123_456_789)) == 123_456_789


def test_the_default_shot_is_target_plus_buffer_plus_the_error_bound() -> None:
    plan = plan_shot(T, 0.001, 300_000, one_way_ns=20 * MS, aim_early_fraction=0.0, send_delay_ns=0)
    assert plan == ShotPlan(
        fire_ns=T + MS + 300_000, call_ns=T + MS + 300_000, margin_ns=300_000, lead_ns=0
    )
    assert plan_shot(T, 0.0, 0, None, 0.5, None).fire_ns == T


def test_aiming_early_leads_by_part_of_the_one_way_latency() -> None:
    assert plan_shot(T, 0.005, 0, 20 * MS, 0.5, None).fire_ns == T - 5 * MS


def test_the_send_is_called_early_by_the_measured_send_delay() -> None:
    assert plan_shot(T, 0.001, 0, None, 0.0, 350_000).call_ns == T + MS - 350_000


def test_send_is_never_called_before_the_lower_edge_passes_the_opening() -> None:
    """A send delay measured under load, larger than the buffer, must not make the shot early."""
    margin = 200_000
    plan = plan_shot(T, 0.001, margin, None, 0.0, 2 * MS)
    assert plan.fire_ns == T + MS + margin and plan.call_ns == T + margin


def test_spinning_starts_2_ms_plus_a_fraction_before() -> None:
    assert spin_from(T, T - NS) == T - 2 * MS - 2 * MS
    assert spin_from(T, T) == T - 2 * MS


def test_epoch_ns_is_exact_to_the_microsecond() -> None:
    instant = datetime(2026, 2, 3, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=3)))
    assert (
        epoch_ns(instant)
        == int(datetime(2026, 2, 3, 11, tzinfo=UTC).timestamp()) * NS + 123_456_000
    )
