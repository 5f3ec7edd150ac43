"""The log failing during a run, in process: close to the shot the POST goes anyway and is kept
aside; the next start puts it on record, so nothing is sent twice inside OBS's debounce."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from obsd.adapters.eventlog import StorageFailed
from obsd.core.events import Event
from obsd.core.phases import Phase
from obsd.core.results import Outcome
from obsd.daemon.driver import SHOT_WINDOW_NS, ShotUnlogged
from obsd.daemon.journal import Journal
from obsd.daemon.lifecycle import _resume
from tests.daemon.scripted import Drive, obs_answer, planned
from tests.fake_clock import NS

ENOSPC = "write to the segment failed: [Errno 28] No space left on device"


def disk_full_from(drive: Drive, true_ns: int) -> None:
    """From `true_ns` on, every write to the run's log fails as a full disk makes it fail."""
    log = drive.journal.log
    write = log.write

    def failing(event: Event) -> bytes:
        if drive.clock.true_ns() >= true_ns:
            log._fail(ENOSPC)
        return write(event)

    log.write = failing  # type: ignore[method-assign]


class Runner:
    def __init__(self) -> None:
        self.started: list[str] = []

    def start(self, run_id: str) -> None:
        self.started.append(run_id)


async def test_a_log_that_fails_seconds_before_the_shot_does_not_stop_it(tmp_path: Path) -> None:
    drive = await planned(tmp_path, [obs_answer({"21234": "successResult"})], wait_s=120)
    disk_full_from(drive, drive.target_ns - 3 * NS)
    with pytest.raises(ShotUnlogged) as unlogged:
        await drive.to_the_end()
    (post,) = drive.obs.posts
    assert post.true_ns >= drive.target_ns, "on time, never early"
    said = str(unlogged.value)
    assert "No space left on device" in said and "attempt 1 was sent anyway" in said
    assert "OBS answered 200: 21234 success" in said and "kept aside" in said
    kept = drive.journal.taken_aside()
    assert [type(p).__name__ for p in kept] == [
        "PhaseChangedPayload",
        "RequestArmedPayload",
        "CrnUpdatePayload",
    ]


async def test_the_next_start_puts_the_unlogged_shot_on_record_and_sends_nothing_more(
    tmp_path: Path,
) -> None:
    drive = await planned(tmp_path, [obs_answer({"21234": "successResult"})], wait_s=120)
    disk_full_from(drive, drive.target_ns - 3 * NS)
    with pytest.raises(ShotUnlogged):
        await drive.to_the_end()
    # The restart: the log as the disk has it, plus what was kept aside.
    drive.journal = Journal.open(tmp_path, drive.clock)
    assert drive.run.phase == Phase.WAITING and not drive.run.requests
    await _resume(drive.journal, Runner())  # type: ignore[arg-type]
    (request,) = drive.run.requests
    assert request.outcome == Outcome.ANSWERED and drive.run.phase == Phase.REGISTERING
    assert drive.journal.taken_aside() == [], "appended once, then cleared"
    run = await drive.to_the_end()
    assert run.phase == Phase.DONE and run.crns[0].state == "success"
    assert len(drive.obs.posts) == 1, "no second POST"


async def test_a_shot_the_answer_of_which_was_lost_is_resent_no_sooner_than_5_s(
    tmp_path: Path,
) -> None:
    answers = [httpx.ReadTimeout("no answer"), obs_answer({"21234": "VAL03"})]
    drive = await planned(tmp_path, answers, wait_s=120)
    disk_full_from(drive, drive.target_ns - 3 * NS)
    with pytest.raises(ShotUnlogged, match="got no answer"):
        await drive.to_the_end()
    drive.journal = Journal.open(tmp_path, drive.clock)
    await _resume(drive.journal, Runner())  # type: ignore[arg-type]
    await drive.to_the_end()
    first, second = drive.obs.posts
    assert second.true_ns - first.true_ns >= 5 * NS, "the lost answer may have been a success"


async def test_a_log_that_fails_long_before_the_shot_stops_the_run(tmp_path: Path) -> None:
    drive = await planned(tmp_path, [], wait_s=3600)
    disk_full_from(drive, drive.target_ns - 600 * NS)
    with pytest.raises(StorageFailed):
        await drive.to_the_end()
    assert drive.obs.posts == [], "stopped: a restart (systemd) may still make it in time"
    assert 600 * NS > SHOT_WINDOW_NS


async def test_without_a_spare_record_the_shot_still_goes_and_says_so(tmp_path: Path) -> None:
    drive = await planned(tmp_path, [obs_answer({"21234": "successResult"})], wait_s=120)
    drive.journal.spare.path.unlink()
    disk_full_from(drive, drive.target_ns - 3 * NS)
    with pytest.raises(ShotUnlogged, match="could not be kept aside either"):
        await drive.to_the_end()
    assert len(drive.obs.posts) == 1


async def test_a_log_that_fails_with_the_answer_keeps_the_answer_aside(tmp_path: Path) -> None:
    drive = await planned(tmp_path, [obs_answer({"21234": "successResult"})], wait_s=120)
    # The POST is on record; the disk fills while OBS answers it (0.2 s on this clock).
    disk_full_from(drive, drive.target_ns + NS // 10)
    with pytest.raises(ShotUnlogged, match="OBS answered 200"):
        await drive.to_the_end()
    drive.journal = Journal.open(tmp_path, drive.clock)
    (request,) = drive.run.requests
    assert request.outcome is None, "the log has the POST but not its answer"
    await _resume(drive.journal, Runner())  # type: ignore[arg-type]
    assert drive.run.requests[0].outcome == Outcome.ANSWERED
    run = await drive.to_the_end()
    assert run.phase == Phase.DONE and len(drive.obs.posts) == 1
