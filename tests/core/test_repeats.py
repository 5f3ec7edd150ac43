"""A failure that repeats is said when it starts, at 10, 100, 1000... repeats, and when it ends."""

from obsd.core.repeats import RepeatedFailure
from obsd.core.timing import NS


def said_while_failing(failure: RepeatedFailure, times: int, every_s: float) -> list[str]:
    lines = [failure.failed(f"EMFILE #{n}", int(n * every_s * NS)) for n in range(times)]
    return [line for line in lines if line is not None]


def test_a_storm_of_a_thousand_failures_costs_four_lines_and_one_more_when_it_ends() -> None:
    failure = RepeatedFailure("accepting a connection")
    lines = said_while_failing(failure, 1_000, every_s=0.1)
    assert lines == [
        "accepting a connection failed: EMFILE #0",
        "accepting a connection failed 10 times in 1 s (said again at 100); last: EMFILE #9",
        "accepting a connection failed 100 times in 10 s (said again at 1000); last: EMFILE #99",
        "accepting a connection failed 1000 times in 1 min 40 s (said again at 10000); "
        "last: EMFILE #999",
    ]
    assert failure.succeeded(100 * NS) == (
        "accepting a connection works again after 1000 failures in 1 min 40 s"
    )


def test_success_without_failures_says_nothing() -> None:
    failure = RepeatedFailure("keep-alive probe to OBS")
    assert failure.succeeded(0) is None
    assert failure.failed("refused", 5 * NS) == "keep-alive probe to OBS failed: refused"
    assert failure.succeeded(6 * NS) == "keep-alive probe to OBS works again after 1 failure in 1 s"
    assert failure.succeeded(7 * NS) is None


def test_after_recovery_a_new_failure_is_news_again() -> None:
    failure = RepeatedFailure("NTP re-check")
    said_while_failing(failure, 50, every_s=600)
    failure.succeeded(0)
    assert failure.count == 0
    assert failure.failed("timed out", 0) == "NTP re-check failed: timed out"
    assert failure.failed("timed out", NS) is None
