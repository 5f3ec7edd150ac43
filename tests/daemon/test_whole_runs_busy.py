"""A busy opening, as the simulator models it: OBS takes the CRNs one after another while the
seats fill, so the course first in the list gets the seat that the same course last loses."""

from __future__ import annotations

from pathlib import Path

import msgspec

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
