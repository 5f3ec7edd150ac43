"""The public schedule as the daemon's watches read it: one fetch per branch page, spaced.

Every watch of a branch shares the page: a reading is handed out again until it is due for
renewal (a poll floor after a good read; after a failure, the backoff of the page's failures
in a row), and a fetch under way is waited for rather than repeated, so the page is fetched at
the page's pace however many watches read it. Any two requests of the daemon, whatever their
branches, are REQUEST_GAP_S apart. Whatever comes back, a reading holds seats or a problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import anyio

from obsd.adapters.clock import Clock
from obsd.adapters.obs_client import Answer, ObsError
from obsd.core.schedule_page import (
    BRANCHES_PATH,
    LEVEL,
    SCHEDULE_PATH,
    SchedulePageError,
    Seats,
    branch_ids,
    seats,
)
from obsd.core.timing import NS
from obsd.core.watch import POLL_FLOOR_S, REQUEST_GAP_S, poll_delay_s
from obsd.daemon.instruments import PublicFetch


class UnknownBranch(LookupError):
    """OBS's branch list has no such branch: the watch cannot read a page for it."""


@dataclass(frozen=True, slots=True)
class PageReading:
    """One read of a branch's page: its sections' seats, or why there are none."""

    seats: dict[str, Seats] | None
    problem: str | None
    read_mono_ns: int
    read_wall_ns: int
    # Until when it is handed out instead of a new fetch.
    fresh_until_mono_ns: int
    # Reads of this page that failed in a row (this one included), and since when.
    failures: int = 0
    failing_since_mono_ns: int | None = None


class SchedulePages:
    """The daemon's reads of OBS's public schedule pages."""

    def __init__(self, clock: Clock, fetch: PublicFetch) -> None:
        self._clock = clock
        self._fetch = fetch
        self._branch_ids: dict[str, dict[str, int]] = {}
        self._readings: dict[tuple[str, str], PageReading] = {}
        self._fetching: dict[tuple[str, str], anyio.Event] = {}
        self._spacing = anyio.Lock()
        self._last_request_mono_ns: int | None = None

    async def read(self, base_url: str, branch: str) -> PageReading:
        """The branch's page as of at most POLL_FLOOR_S ago (UnknownBranch if OBS has none)."""
        key = (base_url, branch)
        while (fetching := self._fetching.get(key)) is not None:
            await fetching.wait()
        recent = self._readings.get(key)
        if recent is not None and self._clock.mono_ns() < recent.fresh_until_mono_ns:
            return recent
        self._fetching[key] = fetched = anyio.Event()
        try:
            reading = await self._read_now(base_url, branch, recent)
            self._readings[key] = reading
            return reading
        finally:
            del self._fetching[key]
            fetched.set()

    async def _read_now(
        self, base_url: str, branch: str, before: PageReading | None
    ) -> PageReading:
        found: dict[str, Seats] | None = None
        try:
            branch_id = await self._branch_id(base_url, branch)
            query = urlencode({"programSeviyeTipiAnahtari": LEVEL, "dersBransKoduId": branch_id})
            answer = await self._get(base_url, f"{SCHEDULE_PATH}?{query}")
            found = seats(_body(answer, "the schedule page").decode("utf-8", "replace"))
            problem = None if found else f"the {branch} schedule page lists no sections"
        except UnknownBranch:
            raise
        except (ObsError, SchedulePageError) as exc:
            problem = str(exc) or type(exc).__name__
        except Exception as exc:  # Whatever a page hands us must not end the watches.
            problem = f"the schedule page could not be read ({exc!r})"
        now, wall = self._clock.mono_ns(), self._clock.wall_ns()
        if problem is None:
            return PageReading(found, None, now, wall, now + int(POLL_FLOOR_S * NS))
        failures = 1 + (before.failures if before is not None else 0)
        since = before.failing_since_mono_ns if before is not None else None
        # The page's own backoff (without jitter: each watch adds its own to its wait).
        fresh_until = now + int(poll_delay_s(POLL_FLOOR_S, failures, 0.0) * NS)
        return PageReading(
            None, problem, now, wall, fresh_until, failures, since if since is not None else now
        )

    async def _branch_id(self, base_url: str, branch: str) -> int:
        ids = self._branch_ids.get(base_url)
        if ids is None:
            query = urlencode({"programSeviyeTipiAnahtari": LEVEL})
            answer = await self._get(base_url, f"{BRANCHES_PATH}?{query}")
            ids = branch_ids(_body(answer, "the branch list"))
            if not ids:  # Not kept: a list emptied by maintenance must not end every watch.
                raise SchedulePageError("the branch list is empty")
            self._branch_ids[base_url] = ids
        if branch not in ids:
            raise UnknownBranch(
                f"OBS's schedule has no branch {branch!r}: give the letters of the course "
                "code, such as BLG for BLG 102E"
            )
        return ids[branch]

    async def _get(self, base_url: str, target: str) -> Answer:
        async with self._spacing:
            if self._last_request_mono_ns is not None:
                await self._clock.sleep_until(self._last_request_mono_ns + int(REQUEST_GAP_S * NS))
            self._last_request_mono_ns = self._clock.mono_ns()
            return await self._fetch(base_url, target)


def _body(answer: Answer, what: str) -> bytes:
    """The body of a 200; any other status is a failure of the read (429 included)."""
    if answer.http_status != 200:
        raise SchedulePageError(f"{what} answered HTTP {answer.http_status}")
    return answer.body
