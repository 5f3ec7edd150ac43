"""Driving one watch run: read the public schedule politely, POST when a seat frees, log it all.

The decisions are the core's (core/watch.py, core/policy.py); this does the waiting, the
reading and the sending, and records each step as an event, so a restart takes the watch up
where its record stands.
"""

from __future__ import annotations

import random
from typing import Final

import anyio

from obsd.adapters.clock import Clock
from obsd.adapters.obs_client import ObsClient
from obsd.core.events import (
    RequestArmedPayload,
    SeatsSeenPayload,
    StallCause,
    WatchStalledPayload,
)
from obsd.core.phases import Phase
from obsd.core.policy import NextPost, Stop, next_step
from obsd.core.repeats import RepeatedFailure
from obsd.core.results import Outcome
from obsd.core.runs import RunState
from obsd.core.schedule_page import Seats
from obsd.core.state import other_posts
from obsd.core.timing import NS, ClockMap, instant
from obsd.core.token_refresh import RefreshKind
from obsd.core.watch import (
    POLL_FLOOR_S,
    STALL_AFTER_S,
    BackToWatching,
    after_answer,
    ended,
    free_seat,
    poll_delay_s,
    quiet_reason,
    token_stall,
    wants_login,
    worth_a_post,
)
from obsd.daemon.instruments import Instruments
from obsd.daemon.journal import Journal
from obsd.daemon.posting import TOKEN_REFUSED, answer_event, answer_line, send_post
from obsd.daemon.run_events import RunEvents
from obsd.daemon.schedule_pages import PageReading, SchedulePages
from obsd.daemon.token_refresher import Keys, TokenRefresher

# A watch takes OBS's spacing from the system clock, which it does not check against NTP (it
# has no instant to hit): this much more keeps a drifting clock out of OBS's windows.
WALL_MARGIN_NS: Final = 1 * NS


class WatchDriver(RunEvents):
    """Drives one watch run to its end; cancel its task to cancel the run."""

    def __init__(
        self,
        journal: Journal,
        run_id: str,
        keys: Keys,
        clock: Clock,
        instruments: Instruments,
        pages: SchedulePages,
        post_gate: anyio.Lock,
    ) -> None:
        super().__init__(journal, run_id)
        self._keys = keys
        self._clock = clock
        self._instruments = instruments
        self._pages = pages
        # Shared by every watch: one decides and POSTs at a time (see _register).
        self._post_gate = post_gate
        self._refresher = TokenRefresher(run_id, keys, instruments)
        self._random = random.Random()
        self._quiet_said: str | None = None
        self._stale_said = False

    def _clock_map(self) -> ClockMap:
        """True time as the system clock has it (see WALL_MARGIN_NS)."""
        return ClockMap(self._clock.mono_ns(), self._clock.wall_ns())

    async def drive(self) -> None:
        """Watch from wherever the record stands until a seat is taken or the watch ends."""
        if self._keys.token() is None and self._keys.credentials() is None:
            await self._finish(Stop(Phase.FAILED, "no OBS token is configured"))
            return
        try:
            async with self._instruments.connect_obs(
                self.run.config, self._keys.token() or ""
            ) as obs:
                await self._watch(obs)
        finally:
            await self._refresher.aclose()

    async def _watch(self, obs: ObsClient) -> None:
        plan = self.run.watch
        assert plan is not None
        page_failures = RepeatedFailure(f"reading the {plan.branch} schedule page")
        if self.run.phase == Phase.REGISTERING and await self._register(obs, None):
            return  # A restart in the middle of a POST: its outcome first.
        if self.run.resumes:
            # When the last read before the restart was is not logged (only changes are):
            # a whole interval keeps the floor however soon the daemon came back.
            await self._sleep(poll_delay_s(plan.every_s, 0, self._random.random()))
        while True:
            stop = ended(self.run, self._clock.wall_ns())
            if stop is not None:
                await self._finish(stop)
                return
            if await self._stay_quiet():
                continue
            try:
                reading = await self._pages.read(self.run.config.obs_base_url, plan.branch)
                page = reading.seats
                seat = None if page is None else free_seat(plan.crn, page, plan.branch)
            except LookupError as exc:  # No such branch, or no such CRN on its page.
                await self._finish(Stop(Phase.FAILED, str(exc)))
                return
            if seat is None:
                await self._page_failed(reading, page_failures)
            else:
                line = page_failures.succeeded(self._clock.mono_ns())
                if line is not None:
                    await self._say(line)
                await self._stall("page", None)
                await self._seen(seat, reading.read_wall_ns)
                await self._keep_token_fresh(obs)
                if seat.free and await self._take(obs, seat):
                    return
            await self._sleep(poll_delay_s(plan.every_s, reading.failures, self._random.random()))

    async def _stay_quiet(self) -> bool:
        """Leave OBS to a timed run near its shot: wait a floor's length, say why once."""
        quiet = quiet_reason(self._timed(), self.run, self._clock.wall_ns())
        if quiet is not None and quiet != self._quiet_said:
            await self._say(quiet)
        self._quiet_said = quiet
        if quiet is not None:
            await self._sleep(POLL_FLOOR_S)
        return quiet is not None

    async def _sleep(self, seconds: float) -> None:
        """Wait, but not past the watch's `until`."""
        wake = self._clock.mono_ns() + int(seconds * NS)
        plan = self.run.watch
        if plan is not None and plan.until_ns is not None:
            wake = min(wake, self._clock.mono_ns() + max(0, plan.until_ns - self._clock.wall_ns()))
        await self._clock.sleep_until(wake)

    async def _stall(self, cause: StallCause, reason: str | None) -> None:
        """Record that a stall of this cause began (told) or ended, when that is news."""
        if self.run.stalls.get(cause) == reason:
            return
        payload = WatchStalledPayload(
            run_id=self._run_id, cause=cause, reason=reason, since_ns=self._clock.wall_ns()
        )
        await self._emit(payload)

    async def _page_failed(self, reading: PageReading, failures: RepeatedFailure) -> None:
        now = self._clock.mono_ns()
        line = failures.failed(reading.problem or "no reading", now)
        if line is not None:
            await self._say(f"{line}; the next read waits longer", "warning")
        since = reading.failing_since_mono_ns
        if since is None or now - since < STALL_AFTER_S * NS or "page" in self.run.stalls:
            return  # Told once per stall, whatever the failures say meanwhile.
        began = instant(self._clock.wall_ns() - (now - since)).strftime("%H:%M UTC")
        await self._stall(
            "page",
            f"the schedule page has been unreadable since {began} ({reading.problem}); "
            "the watch keeps trying, more slowly",
        )

    async def _seen(self, seat: Seats, read_wall_ns: int) -> None:
        """Record the seats when they changed (the page's, as of its read)."""
        last = self.run.seats
        if last is not None and (last.quota, last.enrolled) == (seat.quota, seat.enrolled):
            return
        payload = SeatsSeenPayload(
            run_id=self._run_id, quota=seat.quota, enrolled=seat.enrolled, at_ns=read_wall_ns
        )
        await self._emit(payload, durable=False)

    async def _keep_token_fresh(self, obs: ObsClient) -> None:
        """Log in for a fresh token when it runs short (credentials kept); stall without one."""
        can_log_in = self._keys.credentials() is not None
        info = self._keys.token_info()
        last = self.run.refreshes[-1] if self.run.refreshes else None
        now = self._clock.wall_ns()
        if can_log_in and wants_login(
            self._keys.token() is not None,
            info.exp if info else None,
            now,
            last.at_ns if last else None,
            failed=last is not None and not last.ok,
        ):
            payload, warning = await self._refresher.refresh(self.run, RefreshKind.LOGIN, now, obs)
            if warning is not None:
                await self._say(warning, "warning")
            await self._emit(payload)
            info = self._keys.token_info()
        problem = token_stall(
            self._keys.token() is not None, info.exp if info else None, now, can_log_in
        )
        await self._stall("token", problem)

    async def _take(self, obs: ObsClient, seat: Seats) -> bool:
        """Go for a free seat, unless it is the one just lost still shown; whether it ended."""
        if self._keys.token() is None:
            return False  # Stalled for it (told): a POST without one could only be refused.
        if worth_a_post(self.run, self._clock.wall_ns()):
            self._stale_said = False
            return await self._register(obs, seat)
        if not self._stale_said:
            await self._say(
                f"the page still shows the seat in {seat.crn} that went to someone else; "
                "the watch POSTs again when the page changes"
            )
            self._stale_said = True
        return False

    async def _register(self, obs: ObsClient, seat: Seats | None) -> bool:
        """POST for the seat by the engine's rules; whether the watch has ended.

        Every decision is taken again under the daemon's one POST gate, right before the
        POST, after any wait: watches that woke together, or a timed run that came close
        meanwhile, see each other's POSTs and windows.
        """
        if seat is not None:
            await self._enter(
                Phase.REGISTERING,
                f"a seat is free in {seat.crn} ({seat.enrolled} of {seat.quota} taken)",
            )
        answered = seat is None and bool(self.run.requests)  # resumed after a POST
        while True:
            async with self._post_gate:
                others = other_posts(self._journal.state, self.run)
                step = after_answer(self.run, others) if answered else next_step(self.run, others)
                if isinstance(step, Stop):
                    await self._finish(step)
                    return True
                if isinstance(step, BackToWatching):
                    await self._enter(Phase.WATCHING, step.reason)
                    return False
                if quiet_reason(self._timed(), self.run, self._clock.wall_ns()) is not None:
                    await self._enter(Phase.WATCHING, "a timed run is close to its shot")
                    return False
                due_mono = self._due_mono(step)
                if due_mono <= self._clock.mono_ns():
                    await self._post(obs, step)
                    answered = True
                    if self.run.requests[-1].outcome == Outcome.UNAUTHORIZED:
                        await self._finish(Stop(Phase.FAILED, TOKEN_REFUSED))
                        return True
                    continue
            wait_s = (due_mono - self._clock.mono_ns()) / NS
            await self._say(f"next attempt in {wait_s:.1f} s ({step.reason})")
            await self._clock.sleep_until(due_mono)

    def _due_mono(self, step: NextPost) -> int:
        """When the POST may go, on the monotonic clock (the rules' instant, by the wall)."""
        now = self._clock.mono_ns()
        if not step.not_before_ns:
            return now
        return now + step.not_before_ns + WALL_MARGIN_NS - self._clock.wall_ns()

    def _timed(self) -> RunState | None:
        state = self._journal.state
        return state.runs.get(state.active_run) if state.active_run else None

    async def _post(self, obs: ObsClient, step: NextPost) -> None:
        """One POST, now; its answer recorded."""
        clock = self._clock_map()
        token = self._keys.token()
        if token:
            obs.use_token(token)  # The timed run or a login may have renewed it meanwhile.
        call_mono = self._clock.mono_ns()
        attempt = len(self.run.requests) + 1
        planned = clock.true_ns(call_mono)
        await self._emit(
            RequestArmedPayload(self._run_id, attempt, step.ecrn, step.scrn, planned),
            durable=False,
        )
        answer = await send_post(obs, obs.prepare(step.ecrn, step.scrn))
        update = answer_event(
            self._run_id, attempt, step, answer, clock, self._clock.mono_ns(), call_mono
        )
        await self._emit(update)
        await self._say(*answer_line(update))
