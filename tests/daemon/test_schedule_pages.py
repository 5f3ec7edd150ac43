"""The daemon's reads of the public schedule: one fetch per branch page for every watch of it,
any two requests spaced, failures counted per page so that every watch of it backs off alike."""

from __future__ import annotations

import itertools

import anyio
import pytest

from obsd.adapters.obs_client import Answer, ObsUnreachable
from obsd.core.schedule_page import BRANCHES_PATH
from obsd.core.watch import POLL_FLOOR_S, REQUEST_GAP_S
from obsd.daemon.schedule_pages import SchedulePages, UnknownBranch
from obsd.sim.schedule import schedule_table
from tests.fake_clock import NS, FakeClock

BASE = "https://obs.test"
BRANCHES = (
    b'[{"dersBransKodu": "BLG", "bransKoduId": 3}, {"dersBransKodu": "MAT", "bransKoduId": 7}]'
)


class Pages:
    """A scripted OBS for public pages: what was fetched and when, and an answer for each."""

    def __init__(self, clock: FakeClock, statuses: list[int] | None = None) -> None:
        self.clock = clock
        self.fetched: list[tuple[int, str]] = []
        self.statuses = statuses or []
        self.gate: anyio.Event | None = None

    async def fetch(self, base_url: str, target: str) -> Answer:
        self.fetched.append((self.clock.mono_ns(), target))
        if self.gate is not None:
            await self.gate.wait()
        now = self.clock.mono_ns()
        if target.startswith(BRANCHES_PATH):
            return Answer(200, BRANCHES, now, now)
        if self.statuses:
            status = self.statuses.pop(0)
            if status == 0:
                raise ObsUnreachable("connection refused")
            return Answer(status, b"busy", now, now)
        row = ["21234", "BLG 102E", "x", "", "", "", "", "", "", "40", "40", "", "", "", ""]
        return Answer(200, schedule_table([row]).encode(), now, now)


async def test_watches_of_one_branch_share_a_fetch_younger_than_the_floor() -> None:
    clock = FakeClock()
    pages = Pages(clock)
    reader = SchedulePages(clock, pages.fetch)
    first = await reader.read(BASE, "BLG")
    clock.advance(POLL_FLOOR_S - 1)
    second = await reader.read(BASE, "BLG")
    assert second is first and len(pages.fetched) == 2, "the branch list, then one page"
    clock.advance(1)
    assert (await reader.read(BASE, "BLG")) is not first
    assert len(pages.fetched) == 3, "the branch list is read once"


async def test_a_fetch_under_way_is_waited_for_not_repeated() -> None:
    clock = FakeClock()
    pages = Pages(clock)
    reader = SchedulePages(clock, pages.fetch)
    await reader.read(BASE, "BLG")  # the branch list and a page, out of the way
    clock.advance(POLL_FLOOR_S + REQUEST_GAP_S)
    pages.gate = anyio.Event()
    readings = []

    async def read() -> None:
        readings.append(await reader.read(BASE, "BLG"))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(read)
        tasks.start_soon(read)
        await anyio.wait_all_tasks_blocked()
        pages.gate.set()
    assert len(pages.fetched) == 3 and readings[0] is readings[1]


async def test_any_two_requests_are_spaced_whatever_their_branch() -> None:
    clock = FakeClock()
    pages = Pages(clock)
    reader = SchedulePages(clock, pages.fetch)
    await reader.read(BASE, "BLG")
    await reader.read(BASE, "MAT")
    times = [at for at, _ in pages.fetched]
    assert len(times) == 3
    assert all(b - a >= REQUEST_GAP_S * NS for a, b in itertools.pairwise(times))


@pytest.mark.parametrize("failure", [429, 503, 0])
async def test_failures_back_the_page_off_and_are_counted_with_their_start(failure: int) -> None:
    clock = FakeClock()
    pages = Pages(clock, [failure, failure])
    reader = SchedulePages(clock, pages.fetch)
    first = await reader.read(BASE, "BLG")
    began = first.failing_since_mono_ns
    clock.advance(POLL_FLOOR_S)
    # The page backs off, not each watch: within the backoff every watch gets the failure.
    assert (await reader.read(BASE, "BLG")) is first and len(pages.fetched) == 2
    clock.advance(POLL_FLOOR_S)
    second = await reader.read(BASE, "BLG")
    assert first.seats is None and second.seats is None
    assert (first.failures, second.failures) == (1, 2)
    assert began is not None and second.failing_since_mono_ns == began
    assert second.problem is not None
    assert str(failure) in second.problem if failure else "refused" in second.problem
    clock.advance(4 * POLL_FLOOR_S)
    recovered = await reader.read(BASE, "BLG")
    assert recovered.seats is not None and recovered.failures == 0


async def test_a_branch_obs_does_not_list_is_named() -> None:
    clock = FakeClock()
    reader = SchedulePages(clock, Pages(clock).fetch)
    with pytest.raises(UnknownBranch, match="no branch 'EHB'"):
        await reader.read(BASE, "EHB")


async def test_an_empty_branch_list_or_page_is_a_failure_not_the_end() -> None:
    clock = FakeClock()
    pages = Pages(clock)
    empty = b"[]"

    async def fetch(base_url: str, target: str) -> Answer:
        now = clock.mono_ns()
        if target.startswith(BRANCHES_PATH) and len(pages.fetched) == 0:
            pages.fetched.append((now, target))
            return Answer(200, empty, now, now)
        return await pages.fetch(base_url, target)

    reader = SchedulePages(clock, fetch)
    first = await reader.read(BASE, "BLG")
    assert first.seats is None and first.problem == "the branch list is empty"
    clock.advance(2 * POLL_FLOOR_S)
    assert (await reader.read(BASE, "BLG")).seats is not None, "the list is asked for again"


async def test_whatever_the_fetch_raises_is_a_problem_not_a_crash() -> None:
    clock = FakeClock()

    async def fetch(base_url: str, target: str) -> Answer:
        raise UnicodeError("a certificate name that is not IDNA")

    reading = await SchedulePages(clock, fetch).read(BASE, "BLG")
    assert reading.seats is None and reading.problem is not None
    assert "UnicodeError" in reading.problem
