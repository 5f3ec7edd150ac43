"""Watch runs on the real daemon against the simulator's public schedule (add/drop days): a seat
freed is taken within one poll interval plus the debounce; a seat that is gone before the POST
lands puts the watch back to watching; the page is never read faster than the floor, judged
from the simulator's own request log; a crash and restart keeps the watch.

These run in real time, at the real floor of one read a minute: the slow suite.
"""

from __future__ import annotations

import itertools
import shlex
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from obsd.core.policy import DEBOUNCE_SPACING_S
from obsd.core.schedule_page import SCHEDULE_PATH
from obsd.core.timing import NS
from obsd.core.watch import POLL_FLOOR_S, POLL_JITTER
from obsd.daemon.watch_driver import WALL_MARGIN_NS
from obsd.sim import Course, SeatChange
from tests.conftest import wait_until
from tests.harness import COURSES, Registration, registration
from tests.notice_receivers import record_command, recorded

# The watched section: full (quota 1, its one seat taken by someone the simulator does not model).
WATCHED = "22001"
# The longest a read waits after the one before, with its jitter.
MAX_POLL_S = POLL_FLOOR_S * (1 + POLL_JITTER)
# The registration opened ten minutes ago: these are the add/drop days.
OPENED_S_AGO = 600
# The simulator's true time runs this far ahead of ours (as the harness's default).
CLOCK_OFFSET_S = 1.75


def catalogue(*changes: SeatChange) -> list[Course]:
    """The harness's courses, with the watched section's seats changing on a script."""
    return [
        course.__class__(**{**_fields(course), "seat_changes": list(changes)})
        if course.crn == WATCHED
        else course
        for course in COURSES
    ]


def _fields(course: Course) -> dict[str, Any]:
    return {name: getattr(course, name) for name in course.__struct_fields__}


def server_s(after_s: float) -> float:
    """The simulator's true time `after_s` from now, in epoch seconds (what SeatChange.at is)."""
    return time.time() + CLOCK_OFFSET_S + after_s


def page_reads_ns(reg: Registration) -> list[int]:
    """When each schedule page request reached the simulator (true time)."""
    return [r.arrival_ns for r in reg.sim.requests() if r.path == SCHEDULE_PATH]


def watch(reg: Registration, **fields: Any) -> str:
    response = reg.request("watch_seat", crn=WATCHED, branch="BLG", **fields)
    assert response["success"], response
    return str(response["data"]["run_id"])


@pytest.mark.slow
def test_a_freed_seat_is_taken_within_one_poll_interval_and_the_page_is_read_politely(
    short_dir: Path,
) -> None:
    out = short_dir / "notices.jsonl"
    args = ["--notify-command", shlex.join(record_command(out))]
    # The seat frees 75 s from now: after a read or two of a full page.
    freed_s = server_s(75)
    with registration(
        short_dir,
        opening_in_s=-OPENED_S_AGO,
        daemon_args=args,
        clock_offset_s=CLOCK_OFFSET_S,
        courses=catalogue(SeatChange(at=freed_s, delta=-1)),
    ) as reg:
        reg.plan(ecrn=["21234"])
        run_id = watch(reg)
        events = reg.wait_for("done", timeout_s=75 + MAX_POLL_S + 60)
        run = reg.run_detail(run_id)
        (post,) = reg.posts()
        reads = page_reads_ns(reg)
        statuses = [r.status for r in reg.sim.requests() if r.path == SCHEDULE_PATH]
        wait_until(lambda: recorded(out), 30, "the seat_taken notice")
        notices = [r["notice"] for r in recorded(out)]
    freed_ns = int(freed_s * NS)
    assert run["phase"] == "done" and run["crns"][0]["state"] == "success"
    # Within one poll interval of the freeing, plus the send; never before it.
    assert freed_ns <= post.arrival_ns <= freed_ns + int((MAX_POLL_S + 5) * NS)
    assert post.body == {"ECRN": [WATCHED], "SCRN": []}
    gaps = [(b - a) / NS for a, b in itertools.pairwise(reads)]
    assert gaps and min(gaps) >= POLL_FLOOR_S - 0.05, gaps  # the floor, by OBS's own log
    assert set(statuses) == {200}, "never a 429"
    assert [e["payload"]["enrolled"] for e in events if e["type"] == "seats_seen"] == [1, 0]
    assert [n["kind"] for n in notices] == ["seat_taken"]


@pytest.mark.slow
def test_a_seat_gone_before_the_post_puts_the_watch_back_and_a_crash_keeps_the_watch(
    short_dir: Path,
) -> None:
    # The page shows a free seat that someone else already has (a page behind the truth), then
    # catches up; later a seat truly frees.
    freed_s = server_s(150)
    courses = catalogue(
        SeatChange(at=server_s(5), delta=-1, page_only=True),
        SeatChange(at=server_s(40), delta=1, page_only=True),
        SeatChange(at=freed_s, delta=-1),
    )
    with registration(
        short_dir, opening_in_s=-OPENED_S_AGO, clock_offset_s=CLOCK_OFFSET_S, courses=courses
    ) as reg:
        reg.plan(ecrn=["21234"])
        run_id = watch(reg)
        lost = reg.wait_for("state", timeout_s=60, after_seq=_head(reg))
        back = reg.wait_for("state", timeout_s=30, after_seq=lost[-1]["seq"])
        assert back[-1]["payload"]["phase"] == "watching", back[-1]
        # A crash while watching: the restarted daemon takes the watch up where it was.
        assert reg.daemon.stop(signal.SIGKILL) == -signal.SIGKILL
        killed_ns = reg.sim.true_time_ns()
        reg.daemon.start()
        events = reg.wait_for("done", timeout_s=150 + 2 * MAX_POLL_S + 60, after_seq=0)
        run = reg.run_detail(run_id)
        first, second = reg.posts()
        reads = page_reads_ns(reg)
    assert first.response["ecrnResultList"][0]["resultCode"] == "VAL06"
    assert second.arrival_ns >= int(freed_s * NS), "the second only once a seat truly freed"
    assert run["phase"] == "done" and run["crns"][0]["state"] == "success"
    phases = [e["payload"]["phase"] for e in events if e["type"] == "state"]
    assert phases == ["registering", "watching", "registering"]
    assert [e["type"] for e in events].count("run_resumed") == 1
    # The second POST kept OBS's debounce after the first, across the crash.
    assert second.arrival_ns - first.arrival_ns >= DEBOUNCE_SPACING_S * NS + WALL_MARGIN_NS
    # The floor holds across the restart too: no read came sooner after the one before.
    gaps = [(b - a) / NS for a, b in itertools.pairwise(reads)]
    assert gaps and min(gaps) >= POLL_FLOOR_S - 0.05, gaps
    assert any(r > killed_ns for r in reads)


def _head(reg: Registration) -> int:
    with reg.daemon.client() as client:
        return int(client.greeting["head_seq"])
