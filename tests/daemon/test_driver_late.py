"""Late starts, in process on a fake clock: a run whose target has passed fires at once, says
how late it is, and never lands inside OBS's debounce of an earlier POST, even another run's."""

from __future__ import annotations

from pathlib import Path

import pytest

from obsd.core.events import LateStart, OpeningMissed
from obsd.core.phases import Phase
from tests.daemon.scripted import obs_answer, planned, planned_next
from tests.fake_clock import NS

ADDED = {"21234": "successResult"}


async def test_a_run_started_after_its_target_fires_at_once_and_says_how_late(
    tmp_path: Path,
) -> None:
    drive = await planned(tmp_path, [obs_answer(ADDED)], wait_s=-130)
    started = drive.clock.true_ns()
    run = await drive.to_the_end()
    assert run.phase == Phase.DONE and run.crns[0].state == "success"
    (post,) = drive.obs.posts
    # At once: calibration (a few NTP exchanges on the fake clock), then the POST.
    assert 0 < post.true_ns - started < 2 * NS
    (late,) = [e for e in drive.events() if isinstance(e, LateStart)]
    assert late.payload.late_by_s == pytest.approx(130, abs=2)
    assert run.late_by_s == late.payload.late_by_s and not run.opening_missed
    assert not any(isinstance(e, OpeningMissed) for e in drive.events())


async def test_a_run_whose_daemon_was_down_at_the_target_records_the_missed_opening(
    tmp_path: Path,
) -> None:
    drive = await planned(tmp_path, [obs_answer(ADDED)], wait_s=60)
    drive.clock.advance(105)  # the daemon was down through the opening
    run = await drive.to_the_end()
    (missed,) = [e for e in drive.events() if isinstance(e, OpeningMissed)]
    assert missed.payload.late_by_s == pytest.approx(45, abs=2)
    assert run.opening_missed and run.phase == Phase.DONE
    assert len(drive.obs.posts) == 1


async def test_an_on_time_run_is_not_late(tmp_path: Path) -> None:
    drive = await planned(tmp_path, [obs_answer(ADDED)], wait_s=30)
    run = await drive.to_the_end()
    assert run.late_by_s is None
    assert not any(isinstance(e, LateStart | OpeningMissed) for e in drive.events())


async def test_a_late_start_waits_out_the_debounce_of_an_earlier_runs_post(
    tmp_path: Path,
) -> None:
    first = await planned(tmp_path, [obs_answer({"21234": "VAL06"})], wait_s=5)
    assert (await first.to_the_end()).phase == Phase.DONE
    answered_ns = first.run.requests[-1].responded_ns
    assert answered_ns is not None
    # At once another run, aimed at the opening that has just passed: a late start.
    second = await planned_next(first, "run-2", [obs_answer(ADDED)], wait_s=-1)
    run = await second.to_the_end()
    assert run.phase == Phase.DONE and run.late_by_s is not None
    _, second_post = second.obs.posts
    # OBS's debounce is per token: never within retry_interval of the earlier answer.
    assert second_post.true_ns >= answered_ns + int(run.config.retry_interval * NS)
    assert "after another run's last POST" in " ".join(second.said())


async def test_a_post_to_another_obs_does_not_hold_a_run_back(tmp_path: Path) -> None:
    first = await planned(tmp_path, [obs_answer({"21234": "VAL06"})], wait_s=5)
    await first.to_the_end()
    answered_ns = first.run.requests[-1].responded_ns
    assert answered_ns is not None
    # Another server (a test OBS) keeps its own debounce window.
    second = await planned_next(
        first, "run-2", [obs_answer(ADDED)], wait_s=-1, obs_base_url="https://obs-test.example"
    )
    run = await second.to_the_end()
    _, second_post = second.obs.posts
    assert run.phase == Phase.DONE
    assert second_post.true_ns < answered_ns + int(run.config.retry_interval * NS)
