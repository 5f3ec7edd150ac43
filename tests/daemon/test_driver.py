"""The run driver in process, on a fake clock against a scripted OBS (tests/daemon/scripted.py):
whole runs, retries and waits of hours, judged by when each request reached OBS in true time."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from obsd.core.phases import Phase
from obsd.core.timing import SPIN_BASE_NS, WARM_UP_LEADS_NS
from obsd.core.waiting import RECHECK_NTP_EVERY_S
from tests.daemon.scripted import MS, TRUE_OFFSET_NS, obs_answer, planned
from tests.fake_clock import NS

REFUSED = httpx.ConnectError("[Errno 111] Connection refused")


def gap_s(first_answered_ns: int, next_arrival_ns: int) -> float:
    return (next_arrival_ns - first_answered_ns) / NS


async def test_the_first_post_arrives_at_the_target_plus_the_buffer_never_before(
    tmp_path: Path,
) -> None:
    drive = await planned(
        tmp_path, [obs_answer({"21234": "successResult"})], wait_s=3 * 3600, safety_buffer=0.005
    )
    run = await drive.to_the_end()
    (post,) = drive.obs.posts
    # The wall clock is 2.5 s behind true time; only NTP time lands the shot, and it waits
    # for the error bound of the last re-check (3.5 s before): 0.1 ms on this path.
    assert run.calibration is not None and run.calibration.margin_ms is not None
    margin_ns = round(run.calibration.margin_ms * MS)
    assert abs(post.true_ns - drive.target_ns - 5 * MS - margin_ns) <= 1_000
    assert 0 < margin_ns < 200_000
    assert run.phase == Phase.DONE and run.crns[0].state == "success"
    assert drive.clock.wall_ns() + TRUE_OFFSET_NS > drive.target_ns


async def test_each_post_follows_warm_ups_of_the_send_path_just_before_it(
    tmp_path: Path,
) -> None:
    drive = await planned(
        tmp_path, [obs_answer({"21234": "VAL02"}), obs_answer({"21234": "successResult"})]
    )
    await drive.to_the_end()
    posts = [post.true_ns for post in drive.obs.posts]
    leads = len(WARM_UP_LEADS_NS)
    assert len(drive.warm_ups) == leads * len(posts) and len(posts) == 2
    # The warm-ups end before the spin: they cannot hold the shot back, nor does OBS see them.
    for number, sent in enumerate(posts):
        warmed = drive.warm_ups[number * leads : (number + 1) * leads]
        assert [sent - at for at in warmed] == list(WARM_UP_LEADS_NS)
        assert min(WARM_UP_LEADS_NS) > SPIN_BASE_NS
    assert {arrival.method for arrival in drive.obs.arrivals} == {"HEAD", "POST"}


async def test_each_post_is_sealed_before_its_final_wait_and_nothing_goes_to_obs_between(
    tmp_path: Path,
) -> None:
    drive = await planned(
        tmp_path, [obs_answer({"21234": "VAL02"}), obs_answer({"21234": "successResult"})]
    )
    await drive.to_the_end()
    posts = drive.obs.posts
    seals = [at for method, at in drive.seals if method == "POST"]
    assert len(seals) == len(posts) == 2
    for sealed_at, post in zip(seals, posts, strict=True):
        # Sealed before the warm-ups and the spin: at the instant the POST is one write.
        assert post.true_ns - sealed_at > max(WARM_UP_LEADS_NS)
        # The record is the connection's next: no keep-alive HEAD may go out in between.
        between = [a for a in drive.obs.arrivals if sealed_at <= a.true_ns < post.true_ns]
        assert between == []


async def test_not_open_then_debounce_then_success_each_spaced_from_the_answer(
    tmp_path: Path,
) -> None:
    drive = await planned(
        tmp_path,
        [
            obs_answer({"21234": "VAL02"}),
            obs_answer({"21234": "VAL16"}),
            obs_answer({"21234": "successResult"}),
        ],
        retry_interval=3.5,
    )
    run = await drive.to_the_end()
    _, second, third = drive.obs.posts
    answered = [record.responded_ns for record in run.requests]
    assert answered[0] is not None and answered[1] is not None
    assert gap_s(answered[0], second.true_ns) >= 3.5
    assert gap_s(answered[1], third.true_ns) >= 5.0, "at least 5 s after VAL16"
    assert run.phase == Phase.DONE and run.crns[0].state == "success"


async def test_a_timeout_is_an_unknown_outcome_that_already_registered_resolves(
    tmp_path: Path,
) -> None:
    drive = await planned(
        tmp_path, [httpx.ReadTimeout("no answer"), obs_answer({"21234": "VAL03"})]
    )
    run = await drive.to_the_end()
    first, second = run.requests
    assert first.outcome == "unknown" and second.outcome == "answered"
    assert first.responded_ns is not None
    assert gap_s(first.responded_ns, drive.obs.posts[1].true_ns) >= 5.0
    assert run.crns[0].state == "already" and run.phase == Phase.DONE


async def test_the_request_budget_holds_posts_back_for_its_window(tmp_path: Path) -> None:
    drive = await planned(
        tmp_path,
        [obs_answer({"21234": "VAL02"})] * 3 + [obs_answer({"21234": "successResult"})],
        budget_posts=2,
        budget_window=300.0,
    )
    run = await drive.to_the_end()
    posts = drive.obs.posts
    assert len(posts) == 4 and run.phase == Phase.DONE
    first_answer = run.requests[0].responded_ns
    assert first_answer is not None and gap_s(first_answer, posts[2].true_ns) >= 300.0


async def test_max_attempts_ends_the_run_done_with_the_crn_still_open(tmp_path: Path) -> None:
    drive = await planned(tmp_path, [obs_answer({"21234": "VAL02"})] * 3, max_attempts=3)
    run = await drive.to_the_end()
    assert len(drive.obs.posts) == 3
    assert run.phase == Phase.DONE and run.reason is not None
    assert run.reason.startswith("max_attempts (3) reached; still open: 21234")


async def test_a_successful_drop_is_never_sent_again(tmp_path: Path) -> None:
    drive = await planned(
        tmp_path,
        [
            obs_answer({"21234": "VAL06"}, {"20456": "successResult"}),
            obs_answer({"21234": "successResult"}),
        ],
        ecrn=["21234"],
        scrn=["20456"],
        retry_full=True,
    )
    await drive.to_the_end()
    first, second = drive.obs.posts
    assert first.body == {"ECRN": ["21234"], "SCRN": ["20456"]}
    assert second.body == {"ECRN": ["21234"], "SCRN": []}


async def test_a_volume_ban_stops_the_run_and_a_401_fails_it(tmp_path: Path) -> None:
    banned = await planned(tmp_path / "ban", [obs_answer({"21234": "VAL21"})])
    run = await banned.to_the_end()
    assert run.phase == Phase.FAILED and "VAL21" in (run.reason or "")
    assert len(banned.obs.posts) == 1
    refused = await planned(tmp_path / "401", [httpx.Response(401)])
    run = await refused.to_the_end()
    assert run.phase == Phase.FAILED and "401" in (run.reason or "")


async def test_after_a_restart_the_next_post_keeps_its_spacing(tmp_path: Path) -> None:
    drive = await planned(
        tmp_path, [obs_answer({"21234": "VAL16"}), obs_answer({"21234": "successResult"})]
    )
    with anyio.CancelScope() as scope:
        # "Crash" right after the first answer is logged: the driver's task is cancelled.
        async def crash_after_first_answer() -> None:
            while not drive.run.requests or drive.run.requests[0].outcome is None:
                await anyio.lowlevel.checkpoint()
            scope.cancel()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(crash_after_first_answer)
            await drive.driver().drive()
    assert drive.run.phase == Phase.REGISTERING and len(drive.obs.posts) == 1
    run = await drive.to_the_end()  # A new driver, as the daemon makes after a restart.
    answered = run.requests[0].responded_ns
    assert answered is not None
    assert gap_s(answered, drive.obs.posts[1].true_ns) >= 5.0
    assert run.phase == Phase.DONE and run.crns[0].state == "success"


async def test_an_unreachable_obs_is_said_once_then_counted(tmp_path: Path) -> None:
    drive = await planned(
        tmp_path, [obs_answer({"21234": "successResult"})], wait_s=3 * RECHECK_NTP_EVERY_S + 120
    )
    drive.obs.head_failure = REFUSED
    await drive.to_the_end()
    heads = [a for a in drive.obs.arrivals if a.method == "HEAD"]
    assert len(heads) >= 10, "the probes were tried"
    failures = [line for line in drive.said() if "failed" in line]
    assert failures == [
        "keep-alive probe to OBS failed: ConnectError('[Errno 111] Connection refused')",
        "keep-alive probe to OBS failed 10 times in 42 s (said again at 100); "
        "last: ConnectError('[Errno 111] Connection refused')",
    ]


async def test_obs_failing_every_way_is_retried_as_unknown_then_succeeds(tmp_path: Path) -> None:
    # IIS's HTML page at the opening, a 500, a reset before the answer, a body that is not
    # JSON: none of them is an answer, so each next POST waits at least 5 s.
    drive = await planned(
        tmp_path,
        [
            httpx.Response(503, text="<html><h1>HTTP Error 503. The service is unavailable."),
            httpx.Response(500),
            httpx.ReadError("connection reset by peer"),
            httpx.Response(200, text="{not json"),
            obs_answer({"21234": "successResult"}),
        ],
        retry_interval=1.0,
    )
    run = await drive.to_the_end()
    assert [record.outcome for record in run.requests] == [
        "http_error",
        "http_error",
        "unknown",
        "http_error",
        "answered",
    ]
    arrivals = [post.true_ns for post in drive.obs.posts]
    for record, next_arrival in zip(run.requests, arrivals[1:], strict=False):
        assert record.responded_ns is not None
        assert gap_s(record.responded_ns, next_arrival) >= 5.0
    assert run.phase == Phase.DONE and run.crns[0].state == "success"


class Crash(BaseException):
    """The process dies here (nothing catches a BaseException on its way out)."""


async def test_a_crash_between_the_post_and_its_answer_resends_no_sooner_than_5_s(
    tmp_path: Path,
) -> None:
    def crash(request: httpx.Request) -> httpx.Response:
        raise Crash  # OBS has the POST; the daemon dies before any answer is logged.

    drive = await planned(tmp_path, [crash, obs_answer({"21234": "VAL03"})])
    with pytest.raises(Crash):
        await drive.driver().drive()
    (sent,) = drive.run.requests
    assert sent.outcome is None and drive.run.phase == Phase.REGISTERING
    run = await drive.to_the_end()  # the daemon restarted
    _, second = drive.obs.posts
    assert gap_s(sent.planned_ns, second.true_ns) >= 5.0, "the lost answer counts as unknown"
    assert run.crns[0].state == "already" and run.phase == Phase.DONE
