"""The simulated public course schedule: branches, each section's quota and enrolled count as
the registrar has them (seat changes included), and a 429 when polled too fast; read back
with the core's own parser."""

from __future__ import annotations

import time

import httpx
import msgspec

from obsd.core.schedule_page import BRANCHES_PATH, LEVEL, SCHEDULE_PATH, branch_ids, seats
from obsd.sim import SimConfig, Simulator
from obsd.sim.config import DEFAULT_COURSES, SeatChange


def test_a_seat_freed_shows_on_the_page_until_someone_else_takes_it() -> None:
    now = time.time()
    # 22001 is full; a seat frees a second ago, and another student takes it in an hour.
    changes = [SeatChange(at=now - 1, delta=-1), SeatChange(at=now + 3600, delta=1)]
    courses = [
        msgspec.structs.replace(c, seat_changes=changes) if c.crn == "22001" else c
        for c in DEFAULT_COURSES
    ]
    config = SimConfig(courses=courses, schedule_min_interval_s=0)
    with Simulator(config).serve_in_thread() as sim, httpx.Client(base_url=sim.base_url) as web:
        listed = web.get(BRANCHES_PATH, params={"programSeviyeTipiAnahtari": LEVEL})
        ids = branch_ids(listed.content)
        page = web.get(
            SCHEDULE_PATH,
            params={"programSeviyeTipiAnahtari": LEVEL, "dersBransKoduId": ids["EHB"]},
        )
    found = seats(page.text)
    assert set(found) == {"22001", "22002"}, "the EHB branch's sections"
    assert (found["22001"].quota, found["22001"].enrolled, found["22001"].free) == (60, 59, 1)
    assert found["22002"].free == 16


def test_polling_faster_than_the_page_allows_gets_429() -> None:
    config = SimConfig(schedule_min_interval_s=60)
    with Simulator(config).serve_in_thread() as sim, httpx.Client(base_url=sim.base_url) as web:
        first = web.get(BRANCHES_PATH).status_code
        second = web.get(BRANCHES_PATH).status_code
    assert (first, second) == (200, 429)
