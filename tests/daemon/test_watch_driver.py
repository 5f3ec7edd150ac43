"""A watch run in process: the public schedule and OBS scripted, days of add/drop in milliseconds.

The page serves a section whose seat frees and is taken again on a script, so what is judged
is exact: when the page was read, when each POST arrived, what the log says.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec

from obsd.core.config import Config
from obsd.core.events import (
    Actor,
    Event,
    PhaseChanged,
    RunCreatedPayload,
    SeatsSeen,
    WatchPlan,
    WatchStalled,
    event_decoder,
)
from obsd.core.phases import Phase
from obsd.core.policy import DEBOUNCE_SPACING_S
from obsd.core.runs import RunState
from obsd.core.schedule_page import BRANCHES_PATH
from obsd.core.token import TokenInfo
from obsd.core.watch import (
    BACKOFF_CAP_S,
    POLL_FLOOR_S,
    POLL_JITTER,
    SAME_SEAT_AGAIN_S,
    STALL_AFTER_S,
)
from obsd.daemon.journal import Journal
from obsd.daemon.schedule_pages import SchedulePages
from obsd.daemon.watch_driver import WatchDriver
from obsd.sim.schedule import schedule_table
from tests.daemon.scripted import (
    DEFAULT_LATENCY_S,
    UNSYNCHRONISED_KERNEL,
    Answer,
    FixedKeys,
    ScriptedObs,
    instruments,
    obs_answer,
)
from tests.fake_clock import NS, FakeClock

WATCH_ID = "watch-1"
CRN = "21234"
QUOTA = 40
MINUTE = 60 * NS


def cells(crn: str, quota: int, enrolled: int) -> list[str]:
    """One section's row as the public schedule shows it (cells 9 and 10: the seats)."""
    slot = ["Yüz Yüze", "Dr. X", "EEB", "Pazartesi", "08:30/11:29", "5202"]
    return [crn, "BLG 102E", "Intro", *slot, str(quota), str(enrolled), "", "", "Yok/None", ""]


@dataclass
class Term:
    """The public schedule of one branch: the watched section is full except while freed.

    `free` holds (from, to) intervals in seconds after the watch began; `statuses` are
    answered (one each) to the first page reads instead of the page.
    """

    clock: FakeClock
    started_ns: int
    free: list[tuple[float, float]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    crns: tuple[str, ...] = (CRN,)

    def seat_free(self) -> bool:
        elapsed = (self.clock.true_ns() - self.started_ns) / NS
        return any(start <= elapsed < end for start, end in self.free)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == BRANCHES_PATH:
            return httpx.Response(200, json=[{"dersBransKodu": "BLG", "bransKoduId": 3}])
        if self.statuses:
            return httpx.Response(self.statuses.pop(0), text="<html>Too Many Requests</html>")
        enrolled = QUOTA - 1 if self.seat_free() else QUOTA
        rows = [cells(crn, QUOTA, enrolled) for crn in self.crns]
        return httpx.Response(200, text=schedule_table(rows))

    def take_seat(self) -> Callable[[httpx.Request], httpx.Response]:
        """OBS's answer to a POST: success while the seat is free, else VAL06."""

        def answer(request: httpx.Request) -> httpx.Response:
            drops = msgspec.json.decode(request.content).get("SCRN", [])
            code = "successResult" if self.seat_free() else "VAL06"
            return obs_answer({CRN: code}, dict.fromkeys(drops, "successResult"))

        return answer


@dataclass
class Watch:
    """One watch run on a real journal, with its clock, its page and its OBS."""

    journal: Journal
    clock: FakeClock
    obs: ScriptedObs
    term: Term
    keys: FixedKeys
    pages: SchedulePages
    gate: anyio.Lock = field(default_factory=anyio.Lock)

    @property
    def run(self) -> RunState:
        return self.journal.state.runs[WATCH_ID]

    def driver(self) -> WatchDriver:
        tools = instruments(self.clock, self.obs, [], UNSYNCHRONISED_KERNEL, [], [], [])
        return WatchDriver(
            self.journal, WATCH_ID, self.keys, self.clock, tools, self.pages, self.gate
        )

    async def to_the_end(self) -> RunState:
        with anyio.fail_after(10):  # Real seconds: days of fake time take milliseconds.
            await self.driver().drive()
        return self.run

    def events(self) -> list[Event]:
        return [
            event_decoder.decode(line)
            for path in sorted(self.journal.log.directory.glob("*.jsonl"))
            for line in path.read_bytes().splitlines()
        ]

    def said(self) -> list[str]:
        return [e.payload.message for e in self.events() if e.__struct_config__.tag == "log"]


async def watching(
    directory: Path,
    answers: list[Answer] | None = None,
    *,
    free: list[tuple[float, float]] | None = None,
    statuses: list[int] | None = None,
    keys: FixedKeys | None = None,
    until_s: float | None = 6 * 3600,
    drop: list[str] | None = None,
    branch: str = "BLG",
    **config: Any,
) -> Watch:
    """A watch of CRN 21234 in BLG, polling at the floor, until `until_s` from now."""
    clock = FakeClock()
    journal = Journal.open(directory, clock)
    started = clock.true_ns()
    term = Term(clock, started, free or [], statuses or [])
    obs = ScriptedObs(clock, answers if answers is not None else [term.take_seat()] * 5)
    obs.pages = term.handle
    plan = WatchPlan(
        crn=CRN,
        branch=branch,
        drop=drop or [],
        every_s=POLL_FLOOR_S,
        until_ns=None if until_s is None else clock.wall_ns() + int(until_s * NS),
    )
    snapshot = msgspec.convert(
        {"ecrn": [CRN], "scrn": drop or [], "retry_full": True} | config, Config
    )
    await journal.append(
        RunCreatedPayload(
            WATCH_ID,
            Actor(0, 1),
            snapshot,
            TokenInfo(fingerprint="sha256:x", exp=None),
            clock.wall_ns(),
            plan,
        )
    )
    tools = instruments(clock, obs, [], UNSYNCHRONISED_KERNEL, [], [], [])
    return Watch(
        journal, clock, obs, term, keys or FixedKeys(), SchedulePages(clock, tools.fetch_public)
    )


def page_gaps_s(watch: Watch) -> list[float]:
    reads = [a.true_ns for a in watch.obs.page_reads][1:]  # the first is the branch list
    return [(b - a) / NS for a, b in itertools.pairwise(reads)]


async def test_a_seat_freed_is_taken_within_one_poll_interval_and_the_watch_ends(
    tmp_path: Path,
) -> None:
    watch = await watching(tmp_path, free=[(600, 900)])
    run = await watch.to_the_end()
    assert run.phase == Phase.DONE and run.crns[0].state == "success"
    (post,) = watch.obs.posts
    freed = watch.term.started_ns + 600 * NS
    assert freed <= post.true_ns <= freed + int(POLL_FLOOR_S * (1 + POLL_JITTER) * NS)
    assert post.body == {"ECRN": [CRN], "SCRN": []}
    seen = [e.payload for e in watch.events() if isinstance(e, SeatsSeen)]
    assert [(s.quota, s.enrolled) for s in seen] == [(40, 40), (40, 39)], "changes only"


async def test_the_poll_rate_never_exceeds_the_floor(tmp_path: Path) -> None:
    watch = await watching(tmp_path, until_s=3 * 3600)
    run = await watch.to_the_end()
    assert run.phase == Phase.DONE and "no seat in 21234 was taken" in (run.reason or "")
    gaps = page_gaps_s(watch)
    assert len(gaps) > 100 and min(gaps) >= POLL_FLOOR_S
    assert max(gaps) <= POLL_FLOOR_S * (1 + POLL_JITTER), "jitter lengthens, within bounds"
    assert len(set(gaps)) > 10, "jittered, not in step"
    assert not watch.obs.posts


async def test_a_seat_that_vanishes_before_the_post_lands_puts_the_watch_back_to_watching(
    tmp_path: Path,
) -> None:
    watch = await watching(tmp_path, free=[(600, 3600), (5400, 6000)])
    watch.obs.answers = [someone_else_first(watch.term), watch.term.take_seat()]
    run = await watch.to_the_end()
    assert run.phase == Phase.DONE and run.crns[0].state == "success"
    phases = [e.payload for e in watch.events() if isinstance(e, PhaseChanged)]
    assert [p.phase for p in phases] == ["registering", "watching", "registering"]
    assert phases[1].reason == "the seat went to someone else first (VAL06)"
    _, second = watch.obs.posts
    assert second.true_ns >= watch.term.started_ns + 5400 * NS, "only once the page showed one"


def someone_else_first(term: Term) -> Callable[[httpx.Request], httpx.Response]:
    """OBS's answer when another student's request for the seat arrived just before ours."""

    def answer(request: httpx.Request) -> httpx.Response:
        term.free.pop(0)
        drops = msgspec.json.decode(request.content).get("SCRN", [])
        return obs_answer({CRN: "VAL06"}, dict.fromkeys(drops, "successResult"))

    return answer


async def test_an_accepted_drop_goes_once_since_obs_applies_it_even_when_the_add_fails(
    tmp_path: Path,
) -> None:
    watch = await watching(tmp_path, free=[(600, 3600), (5400, 6000)], drop=["20456"])
    obs = watch.obs
    obs.answers = [someone_else_first(watch.term), watch.term.take_seat()]
    run = await watch.to_the_end()
    assert [p.body for p in obs.posts] == [
        {"ECRN": [CRN], "SCRN": ["20456"]},
        {"ECRN": [CRN], "SCRN": []},
    ]
    assert {c.crn: c.state for c in run.crns} == {CRN: "success", "20456": "success"}


async def test_an_unknown_outcome_is_sent_again_after_the_debounce_and_val03_proves_it(
    tmp_path: Path,
) -> None:
    lost = httpx.ReadTimeout("no answer")
    watch = await watching(tmp_path, [lost, obs_answer({CRN: "VAL03"})], free=[(600, 3600)])
    run = await watch.to_the_end()
    assert run.phase == Phase.DONE and run.crns[0].state == "already"
    first, second = watch.obs.posts
    assert second.true_ns - first.true_ns >= DEBOUNCE_SPACING_S * NS


async def test_429_backs_off_exponentially_to_the_cap_and_is_said_once_with_a_count(
    tmp_path: Path,
) -> None:
    watch = await watching(tmp_path, statuses=[429] * 12, until_s=5 * 3600)
    await watch.to_the_end()
    gaps = page_gaps_s(watch)
    backed = gaps[:12]  # after each of the 12 failures
    assert all(b >= a for a, b in itertools.pairwise(backed) if b < BACKOFF_CAP_S)
    assert backed[0] >= 2 * POLL_FLOOR_S and backed[1] >= 4 * POLL_FLOOR_S
    assert backed[-1] >= BACKOFF_CAP_S and max(gaps) <= BACKOFF_CAP_S * (1 + POLL_JITTER)
    assert gaps[12] <= POLL_FLOOR_S * (1 + POLL_JITTER), "back to the floor once it works"
    failures = [line for line in watch.said() if "schedule page failed" in line]
    assert len(failures) == 2, failures  # the first, and again at 10
    assert "HTTP 429" in failures[0] and "failed 10 times" in failures[1]
    assert any("works again after 12 failures" in line for line in watch.said())


async def test_a_page_unreadable_for_long_stalls_the_watch_once_and_the_next_reading_clears_it(
    tmp_path: Path,
) -> None:
    watch = await watching(tmp_path, statuses=[503] * 8, until_s=5 * 3600)
    run = await watch.to_the_end()
    began, ended_ = [e.payload for e in watch.events() if isinstance(e, WatchStalled)]
    assert began.cause == "page" and began.reason is not None
    assert "unreadable since" in began.reason and "HTTP 503" in began.reason
    assert ended_.cause == "page" and ended_.reason is None, "a reading after it ends it"
    assert run.stalls == {}
    # Told once the page had failed for STALL_AFTER_S, not at the first failures.
    first_read = watch.obs.page_reads[1].true_ns
    stalled_at = watch.clock.true_ns()  # (the watch ran on; what counts is the order below)
    assert stalled_at - first_read >= STALL_AFTER_S * NS
    stall_seqs = [e.seq for e in watch.events() if isinstance(e, WatchStalled)]
    assert stall_seqs[0] < stall_seqs[1]


async def test_a_token_about_to_expire_without_a_login_stalls_the_watch(tmp_path: Path) -> None:
    soon = FixedKeys(info=TokenInfo(fingerprint="sha256:x", exp="2026-12-01T09:05:00+00:00"))
    watch = await watching(tmp_path, keys=soon, until_s=3600)
    run = await watch.to_the_end()
    (stall,) = [e.payload for e in watch.events() if isinstance(e, WatchStalled)]
    assert stall.cause == "token" and stall.reason is not None
    assert "token expires at" in stall.reason and "obsctl login" in stall.reason
    assert run.stalls == {"token": stall.reason}


async def test_a_crn_missing_from_its_branch_page_fails_the_watch_saying_so(
    tmp_path: Path,
) -> None:
    watch = await watching(tmp_path)
    watch.term.crns = ("99999",)
    run = await watch.to_the_end()
    assert run.phase == Phase.FAILED
    assert run.reason is not None and "CRN 21234 is not on the BLG schedule page" in run.reason


async def test_a_timed_run_near_its_shot_has_obs_to_itself(tmp_path: Path) -> None:
    # A timed run of the same OBS fires in 5 minutes (and, here, never ends): for the whole
    # hour of the watch, no page is read and no POST goes, though the seat is free.
    watch = await watching(tmp_path, free=[(0, 7200)], until_s=3600)
    target = watch.clock.true_ns() + 5 * MINUTE
    timed = msgspec.structs.replace(watch.run.config, ecrn=["30000"], scrn=[], retry_full=False)
    await watch.journal.append(RunCreatedPayload("timed", Actor(0, 1), timed, None, target))
    run = await watch.to_the_end()
    assert watch.obs.arrivals == []
    assert run.phase == Phase.DONE and "no seat in 21234 was taken" in (run.reason or "")
    quiet = [line for line in watch.said() if "leaves OBS to it" in line]
    assert len(quiet) == 1, "said once, not once a minute"


async def test_an_unknown_branch_fails_the_watch_naming_it(tmp_path: Path) -> None:
    watch = await watching(tmp_path, branch="MAT")
    run = await watch.to_the_end()
    assert run.phase == Phase.FAILED
    assert run.reason is not None and "no branch 'MAT'" in run.reason
    assert len(watch.obs.page_reads) == 1, "only the branch list was read"


async def test_a_page_that_still_shows_the_lost_seat_is_not_chased_every_poll(
    tmp_path: Path,
) -> None:
    # The page lags: it shows a free seat for 40 minutes that OBS no longer has.
    full = [obs_answer({CRN: "VAL06"})] * 5
    watch = await watching(tmp_path, full, free=[(600, 3000)], until_s=1790)
    await watch.to_the_end()
    first, second = watch.obs.posts
    assert second.true_ns - first.true_ns >= SAME_SEAT_AGAIN_S * NS
    stale = [line for line in watch.said() if "still shows the seat" in line]
    assert len(stale) == 2, "said once after each loss, not at every read"


async def test_two_watches_that_see_seats_at_once_post_one_after_the_other(
    tmp_path: Path,
) -> None:
    # Two sections of one branch free at the same moment: two watches, one page, one gate.
    watch = await watching(tmp_path, free=[(600, 7200)])
    watch.term.crns = (CRN, "21235")
    other = "watch-2"
    plan = msgspec.structs.replace(watch.run.watch, crn="21235")
    snapshot = msgspec.structs.replace(watch.run.config, ecrn=("21235",))
    await watch.journal.append(
        RunCreatedPayload(other, Actor(0, 1), snapshot, None, watch.clock.wall_ns(), plan)
    )

    def added(request: httpx.Request) -> httpx.Response:
        (crn,) = msgspec.json.decode(request.content)["ECRN"]
        return obs_answer({crn: "successResult"})

    watch.obs.answers = [added, added]
    tools = instruments(watch.clock, watch.obs, [], UNSYNCHRONISED_KERNEL, [], [], [])
    second = WatchDriver(
        watch.journal, other, watch.keys, watch.clock, tools, watch.pages, watch.gate
    )
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(watch.driver().drive)
            tasks.start_soon(second.drive)
    runs = watch.journal.state.runs
    assert runs[WATCH_ID].phase == runs[other].phase == Phase.DONE
    first_post, second_post = watch.obs.posts
    assert {first_post.body["ECRN"][0], second_post.body["ECRN"][0]} == {CRN, "21235"}
    # OBS's debounce is per token: the second waited for the first's answer, plus the interval.
    answered_ns = first_post.true_ns + int(DEFAULT_LATENCY_S * NS)
    assert second_post.true_ns >= answered_ns + int(snapshot.retry_interval * NS)
    # One page for both: its reads are a poll floor apart, as for one watch.
    page_times = [a.true_ns for a in watch.obs.page_reads[1:]]
    assert all(b - a >= POLL_FLOOR_S * NS for a, b in itertools.pairwise(page_times))
