"""The cached Date clock, the skewed server clock, and the fault plan."""

from __future__ import annotations

import pytest

from obsd.sim.clock import SimClock, cached_date_second, http_date
from obsd.sim.config import FaultRule
from obsd.sim.faults import FaultPlan

S = 1_000_000_000
MS = 1_000_000


@pytest.mark.parametrize(
    ("offset_ms", "shown"), [(0, 99), (369, 99), (370, 100), (999, 100), (1369, 100), (1370, 101)]
)
def test_the_cached_date_changes_at_the_phase_not_the_second(offset_ms: int, shown: int) -> None:
    assert cached_date_second(100 * S + offset_ms * MS, 370 * MS) == shown


def test_a_negative_phase_shows_the_next_second_early() -> None:
    assert cached_date_second(100 * S - 20 * MS, -20 * MS) == 100
    assert cached_date_second(100 * S - 21 * MS, -20 * MS) == 99


def test_http_date_format() -> None:
    assert http_date(1_770_120_000) == "Tue, 03 Feb 2026 12:00:00 GMT"


@pytest.mark.parametrize(("skew_s", "shown"), [(0.003, 1_770_116_399), (-0.2, 1_770_116_398)])
def test_true_and_server_clocks(skew_s: float, shown: int) -> None:
    clock = SimClock(lambda: 1_770_120_000 * S, offset_s=-3600.5, skew_s=skew_s, date_phase_s=0.37)
    assert clock.true_ns() == 1_770_116_399 * S + S // 2
    assert clock.server_ns(clock.true_ns()) == clock.true_ns() + round(skew_s * S)
    # The server clock reads ...399.503 (after that second's 0.37 s tick) or ...399.3 (before).
    assert clock.date_header() == http_date(shown)


def test_faults_by_post_number_first_rule_wins() -> None:
    plan = FaultPlan(
        [FaultRule(kind="http_500", on_posts=[1, 3]), FaultRule(kind="reset", on_posts=[3, 4])],
        seed=0,
    )
    kinds = [rule.kind if (rule := plan.choose(n)) else None for n in range(1, 6)]
    assert kinds == ["http_500", None, "http_500", "reset", None]


def test_probabilistic_faults_repeat_with_the_seed() -> None:
    rules = [FaultRule(kind="slow", probability=0.3), FaultRule(kind="http_503", on_posts=[2])]

    def sequence(seed: int) -> list[str | None]:
        plan = FaultPlan(rules, seed)
        return [rule.kind if (rule := plan.choose(n)) else None for n in range(1, 201)]

    first = sequence(7)
    assert first == sequence(7) and first != sequence(8)
    assert first[1] in ("slow", "http_503")
    assert 30 <= first.count("slow") <= 90


@pytest.mark.parametrize(("probability", "expected"), [(0.0, 0), (1.0, 50)])
def test_probability_bounds(probability: float, expected: int) -> None:
    plan = FaultPlan([FaultRule(kind="http_500", probability=probability)], seed=1)
    assert sum(plan.choose(n) is not None for n in range(1, 51)) == expected
