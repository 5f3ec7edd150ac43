"""A busy opening, as the simulator models it: OBS takes the CRNs one after another while the
seats fill, so the course first in the list gets the seat that the same course last loses."""

from __future__ import annotations

import itertools
from pathlib import Path

import msgspec
import pytest

from obsd.core.timing import NS
from obsd.sim import FaultRule
from tests.harness import COURSES, registration

# Each CRN takes 0.6 s of OBS's time; 21234's seats are gone 1 s after the opening.
PROCESSING_S = (0.6, 0.6)
CONTESTED = "21234"
FILLING = [
    msgspec.structs.replace(course, fills_after_s=1.0) if course.crn == CONTESTED else course
    for course in COURSES
]


def states_after(short_dir: Path, ecrn: list[str]) -> dict[str, str]:
    """Run one registration of `ecrn` on a busy opening; each CRN's final state."""
    with registration(
        short_dir, opening_in_s=3, crn_processing_s=PROCESSING_S, courses=FILLING
    ) as reg:
        reg.plan(ecrn=ecrn)
        run_id = reg.start()
        reg.wait_for("done", timeout_s=30)
        run = reg.run_detail(run_id)
        posts = reg.posts()
    assert len(posts) == 1 and posts[0].arrival_ns >= reg.opening_ns, "one POST, never early"
    assert run["phase"] == "done", run["reason"]
    return {c["crn"]: c["state"] for c in run["crns"]}


def test_the_contested_course_first_is_won(short_dir: Path) -> None:
    won = states_after(short_dir, [CONTESTED, "22002"])
    assert won == {CONTESTED: "success", "22002": "success"}


def test_the_contested_course_last_is_lost_to_the_queue(short_dir: Path) -> None:
    # Its turn comes 1.2 s after the arrival, when the other students have taken the seats.
    assert states_after(short_dir, ["22002", "24010", CONTESTED]) == {
        "22002": "success",
        "24010": "success",
        CONTESTED: "full",
    }


@pytest.mark.slow
def test_a_busy_opening_with_every_kind_of_trouble_ends_with_the_seat_it_could_win(
    short_dir: Path,
) -> None:
    # POST 1 gets IIS's HTML 503 page, POST 2 a reset under load, POST 3 is processed but
    # answered after the read timeout; POST 4 learns from VAL03 what POST 3 did. OBS takes
    # 1 s a CRN, and the second course is full before its turn in POST 3.
    faults = [
        FaultRule(kind="iis_503", on_posts=[1]),
        FaultRule(kind="reset", on_posts=[2]),
        FaultRule(kind="slow", on_posts=[3], slow_s=30.0),
    ]
    second = "22002"
    filling = [
        msgspec.structs.replace(course, fills_after_s=10.5) if course.crn == second else course
        for course in COURSES
    ]
    with registration(
        short_dir, opening_in_s=3, crn_processing_s=(1.0, 1.0), courses=filling, faults=faults
    ) as reg:
        reg.plan(ecrn=[CONTESTED, second], read_timeout=5.0, retry_interval=3.5)
        run_id = reg.start()
        reg.wait_for("done", timeout_s=90)
        run = reg.run_detail(run_id)
        posts = reg.posts()
    assert [p.fault for p in posts] == ["iis_503", "reset", "slow", None]
    assert posts[0].arrival_ns >= reg.opening_ns, "never early"
    # An HTML 503 and a reset are assumed to have started OBS's window: 5 s each.
    gaps_s = [(b.arrival_ns - a.arrival_ns) / NS for a, b in itertools.pairwise(posts)]
    assert all(gap >= 5.0 for gap in gaps_s), gaps_s
    assert run["phase"] == "done", run["reason"]
    assert {c["crn"]: c["state"] for c in run["crns"]} == {CONTESTED: "already", second: "full"}
    outcomes = [r["outcome"] for r in run["requests"]]
    assert outcomes == ["http_error", "unknown", "unknown", "answered"]
