"""The retry policy, on plain run records: spacing, budget, limits, backups, drops."""

import msgspec

from obsd.core.config import Config
from obsd.core.events import Actor, CrnResult, CrnUpdatePayload, RequestArmedPayload
from obsd.core.events import RunCreatedPayload as Created
from obsd.core.policy import BAN_WAIT_S, NextPost, Stop, budget_allows_at, next_step
from obsd.core.results import Outcome
from obsd.core.runs import RequestRecord, RunState, new_run, with_request, with_results
from obsd.core.timing import NS
from obsd.core.token import TokenInfo
from obsd.core.token_refresh import RefreshKind, RefreshRecord

T0 = 1_770_112_800 * NS  # an opening instant


def run(**config: object) -> RunState:
    base = {"ecrn": ("11111", "22222"), "scrn": ("33333",)}
    created = Created(
        "r",
        Actor(0, 1),
        msgspec.convert(base | config, Config),
        TokenInfo(fingerprint="f", exp=None),
        T0,
    )
    return new_run(created, "2026-02-03T11:00:00Z")


def answered(
    record: RunState,
    planned_ns: int,
    codes: dict[str, str],
    *,
    outcome: str = "answered",
    latency_ns: int = NS // 100,
) -> RunState:
    step = next_step(record)
    assert isinstance(step, NextPost)
    attempt = len(record.requests) + 1
    record = with_request(
        record, RequestArmedPayload("r", attempt, step.ecrn, step.scrn, planned_ns)
    )
    results = [
        CrnResult(
            crn=crn,
            kind="scrn" if crn in step.scrn else "ecrn",
            state=_state(code),
            code=code,
            message=code,
        )
        for crn, code in codes.items()
    ]
    return with_results(
        record,
        CrnUpdatePayload(
            run_id="r",
            attempt=attempt,
            outcome=outcome,
            http_status=200,
            sent_ns=planned_ns,
            responded_ns=planned_ns + latency_ns,
            results=results,
        ),
    )


def _state(code: str) -> str:
    from obsd.core.results import classify

    return classify(0 if code == "successResult" else 1, code, None, is_drop=False).state


def test_the_first_post_carries_every_crn_at_once() -> None:
    step = next_step(run())
    assert step == NextPost(["11111", "22222"], ["33333"], 0, "first attempt")


def other_post(planned_ns: int, outcome: str | None = "answered") -> RequestRecord:
    """A POST of another run of the same token, answered 10 ms after it was sent."""
    responded = planned_ns + NS // 100 if outcome == "answered" else None
    return RequestRecord(
        attempt=1,
        ecrn=["44444"],
        scrn=[],
        planned_ns=planned_ns,
        outcome=msgspec.convert(outcome, Outcome | None),
        responded_ns=responded,
    )


def test_a_first_post_waits_out_the_debounce_of_another_runs_last_post() -> None:
    # OBS's debounce is per token: a new run right after another one's answer waits too.
    step = next_step(run(), [other_post(T0 - NS)])
    assert step == NextPost(
        ["11111", "22222"],
        ["33333"],
        T0 - NS + NS // 100 + int(3.5 * NS),
        "3.5 s after another run's last POST",
    )
    # Once the run has its own POSTs, its own spacing counts (it came after the other's).
    later = answered(run(), T0 + 10 * NS, {"11111": "VAL02", "22222": "VAL02", "33333": "VAL02"})
    own = next_step(later, [other_post(T0 - NS)])
    assert isinstance(own, NextPost) and own.reason.endswith("after attempt 1")


def test_another_runs_later_post_holds_back_a_retry_and_an_unknown_one_by_five_seconds() -> None:
    later = answered(run(), T0, {"11111": "VAL02", "22222": "VAL02", "33333": "VAL02"})
    step = next_step(later, [other_post(T0 + 2 * NS, outcome=None)])
    assert isinstance(step, NextPost)
    assert step.not_before_ns == T0 + 7 * NS
    assert step.reason == "5 s after another run's last POST"


def test_other_runs_posts_count_in_the_budget_of_a_retry_but_not_of_a_first_shot() -> None:
    others = [other_post(T0 - 60 * NS + i * NS) for i in range(3)]
    first = next_step(run(budget_posts=3), others)
    assert isinstance(first, NextPost) and first.reason != "request budget (3 per 360 s)"
    later = answered(
        run(budget_posts=3), T0, {"11111": "VAL02", "22222": "VAL02", "33333": "VAL02"}
    )
    retry = next_step(later, others)
    assert isinstance(retry, NextPost) and retry.reason == "request budget (3 per 360 s)"


def test_not_open_waits_the_retry_interval_from_the_answer() -> None:
    record = answered(run(), T0, {"11111": "VAL02", "22222": "VAL02", "33333": "VAL02"})
    step = next_step(record)
    assert isinstance(step, NextPost)
    assert step.not_before_ns == T0 + NS // 100 + int(3.5 * NS)


def test_debounce_waits_at_least_five_seconds() -> None:
    record = answered(
        run(retry_interval=1.0), T0, {"11111": "VAL16", "22222": "VAL16", "33333": "VAL16"}
    )
    step = next_step(record)
    assert isinstance(step, NextPost) and step.not_before_ns == T0 + NS // 100 + 5 * NS


def test_an_unknown_outcome_is_spaced_like_a_debounce() -> None:
    record = answered(run(), T0, {}, outcome="unknown")
    step = next_step(record)
    assert isinstance(step, NextPost)
    assert step.not_before_ns >= T0 + 5 * NS
    assert (step.ecrn, step.scrn) == (["11111", "22222"], ["33333"])


def test_only_what_can_still_succeed_is_sent_again() -> None:
    record = answered(
        run(), T0, {"11111": "successResult", "22222": "VAL02", "33333": "successResult"}
    )
    step = next_step(record)
    assert isinstance(step, NextPost) and (step.ecrn, step.scrn) == (["22222"], [])


def test_final_results_end_the_run() -> None:
    record = answered(run(), T0, {"11111": "VAL09", "22222": "VAL03", "33333": "VAL20"})
    assert next_step(record) == Stop("done", "every CRN has a final result")


def test_full_courses_are_retried_only_when_asked() -> None:
    codes = {"11111": "successResult", "22222": "VAL06", "33333": "successResult"}
    assert isinstance(next_step(answered(run(), T0, codes)), Stop)
    step = next_step(answered(run(retry_full=True), T0, codes))
    assert isinstance(step, NextPost) and step.ecrn == ["22222"]


def test_a_backup_replaces_a_full_primary() -> None:
    record = answered(
        run(backup={"22222": "44444"}, retry_full=True),
        T0,
        {"11111": "successResult", "22222": "VAL06", "33333": "successResult"},
    )
    step = next_step(record)
    assert isinstance(step, NextPost) and step.ecrn == ["44444"], "not the primary again"
    assert record.crns[-1].backup_for == "22222"


def test_transient_codes_are_retried_a_bounded_number_of_times() -> None:
    record = run(ecrn=("11111",), scrn=())
    for attempt in range(10):
        step = next_step(record)
        if isinstance(step, Stop):
            break
        record = answered(record, T0 + attempt * 10 * NS, {"11111": "VAL14"})
    assert len(record.requests) == 5 and isinstance(next_step(record), Stop)


def test_a_volume_ban_stops_everything() -> None:
    record = answered(run(), T0, {"11111": "VAL21", "22222": "VAL21", "33333": "VAL21"})
    step = next_step(record)
    assert isinstance(step, Stop) and step.phase == "failed" and "VAL21" in step.reason


def test_max_attempts_ends_the_run_with_what_is_still_open() -> None:
    record = run(max_attempts=2)
    for attempt in range(2):
        record = answered(
            record, T0 + attempt * 4 * NS, {"11111": "VAL02", "22222": "VAL02", "33333": "VAL02"}
        )
    step = next_step(record)
    assert isinstance(step, Stop) and "max_attempts (2)" in step.reason and "33333" in step.reason


def test_the_budget_holds_the_post_until_the_window_has_room() -> None:
    assert budget_allows_at([], 2, 60) == 0
    assert budget_allows_at([5 * NS], 2, 60) == 0
    assert budget_allows_at([5 * NS, 9 * NS, 7 * NS], 2, 60) == 7 * NS + 60 * NS
    record = run(budget_posts=2, budget_window=60.0, retry_interval=1.0)
    record = answered(record, T0, {"11111": "VAL02", "22222": "VAL02", "33333": "VAL02"})
    record = answered(record, T0 + 2 * NS, {"11111": "VAL02", "22222": "VAL02", "33333": "VAL02"})
    step = next_step(record)
    assert isinstance(step, NextPost) and step.not_before_ns == T0 + NS // 100 + 60 * NS
    assert "budget" in step.reason


def test_the_logins_of_the_wait_never_hold_back_the_first_shot() -> None:
    # A small budget in a long window: the wait's two re-mints must not use it up.
    record = run(budget_posts=2, budget_window=3600.0)
    refreshed = msgspec.structs.replace(
        record,
        refreshes=(
            RefreshRecord(RefreshKind.REMINT, T0 - 1800 * NS, ok=True),
            RefreshRecord(RefreshKind.REMINT, T0 - 600 * NS, ok=True),
        ),
    )
    step = next_step(refreshed)
    assert isinstance(step, NextPost) and step.not_before_ns == 0


def test_the_logins_of_the_wait_count_against_the_retries() -> None:
    record = run(budget_posts=2, budget_window=3600.0, retry_interval=1.0)
    refreshed = msgspec.structs.replace(
        record, refreshes=(RefreshRecord(RefreshKind.REMINT, T0 - 600 * NS, ok=True),)
    )
    first = answered(refreshed, T0, {"11111": "VAL02", "22222": "VAL02", "33333": "VAL02"})
    step = next_step(first)
    # Two requests in the window already (the re-mint and the first POST): the budget waits.
    assert isinstance(step, NextPost) and step.not_before_ns == T0 - 600 * NS + 3600 * NS
    assert "budget" in step.reason


def test_a_ban_in_another_run_holds_every_post_of_the_token_for_ten_minutes() -> None:
    banned = msgspec.structs.replace(other_post(T0), codes={"44444": "VAL21"})
    step = next_step(run(), [banned])
    assert isinstance(step, NextPost)
    assert step.not_before_ns == T0 + NS // 100 + int(BAN_WAIT_S * NS)
    assert "VAL21" in step.reason
