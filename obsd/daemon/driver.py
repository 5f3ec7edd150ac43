"""Driving one run: calibrate, wait for the instant, fire, read the answer, retry by the policy.

Every step is an event in the log, and the run's record is the fold of those events, so the
driver can be started on a run at any point of its life (a resume after a restart).
"""

from __future__ import annotations

import contextlib
from typing import Final

import msgspec

from obsd.adapters.clock import Clock, collector_paused
from obsd.adapters.eventlog import StorageFailed
from obsd.adapters.obs_client import Answer, ObsClient, ObsError, PreparedPost
from obsd.core.clock_select import DateProbe, TimeStatus, date_interval
from obsd.core.events import (
    CountdownPayload,
    CrnUpdatePayload,
    Level,
    PhaseChangedPayload,
    RequestArmedPayload,
)
from obsd.core.phases import Phase
from obsd.core.policy import NextPost, Stop, next_step
from obsd.core.repeats import RepeatedFailure
from obsd.core.results import Outcome
from obsd.core.runs import KeptAside, lateness
from obsd.core.state import other_posts
from obsd.core.time_advice import no_time_advice
from obsd.core.time_sources import MIN_QUERY_INTERVAL_NS, Verdict
from obsd.core.timing import NS, SPIN_BASE_NS, WARM_UP_LEADS_NS, ClockMap, instant
from obsd.core.token_refresh import Refresh, RefreshKind
from obsd.core.waiting import (
    FinalApproach,
    ProbeObs,
    RecheckNtp,
    RefreshToken,
    Tick,
    WaitProgress,
    next_wait_step,
    recheck_is_news,
)
from obsd.daemon.calibration import Calibrated, calibrate
from obsd.daemon.instruments import Instruments
from obsd.daemon.journal import Journal
from obsd.daemon.posting import (
    TOKEN_REFUSED,
    Lost,
    answer_event,
    answer_line,
    results_text,
    send_post,
)
from obsd.daemon.run_events import RunEvents
from obsd.daemon.token_refresher import Keys, TokenRefresher

# Retries further away than this get a log line saying when and why.
ANNOUNCE_WAITS_OVER_S: Final = 1.0
# A log that fails this close to a shot does not stop it: nobody could act in time, and the
# seat matters more than the log. The shot goes unrecorded (kept aside), then the daemon stops.
SHOT_WINDOW_NS: Final = 60 * NS


class ShotUnlogged(Exception):
    """The log failed close to a shot; the POST went anyway, and the daemon must now stop."""


class RunDriver(RunEvents):
    """Drives one run to its end; cancel its task to cancel the run.

    Each step is appended to the journal, which refuses any move the phase table does not
    allow; the driver reads the run's record back from the journal's state.
    """

    def __init__(
        self,
        journal: Journal,
        run_id: str,
        keys: Keys,
        clock: Clock,
        instruments: Instruments,
    ) -> None:
        super().__init__(journal, run_id)
        self._keys = keys
        self._refresher = TokenRefresher(run_id, keys, instruments)
        self._clock = clock
        self._instruments = instruments
        # The monotonic instant the next POST is due, once the driver knows it.
        self._shot_mono: int | None = None
        # The log failure the driver carries on through (only inside SHOT_WINDOW_NS).
        self._unlogged: StorageFailed | None = None

    @property
    def shot_is_near(self) -> bool:
        """A POST is due within SHOT_WINDOW_NS: a failing log must not stop the daemon yet."""
        due = self._shot_mono
        return due is not None and self._clock.mono_ns() >= due - SHOT_WINDOW_NS

    async def _emit(self, payload: msgspec.Struct, *, durable: bool = True) -> None:
        if self._unlogged is not None:
            return  # The log failed close to the shot: the shot goes on, unrecorded.
        try:
            await self._journal.append(payload, durable=durable)
        except StorageFailed as exc:
            if not self.shot_is_near:
                raise
            self._unlogged = exc

    async def _say_if(self, line: str | None, level: Level = "info") -> None:
        """Say what a RepeatedFailure found worth saying, if anything."""
        if line is not None:
            await self._say(line, level)

    async def drive(self) -> None:
        """Take the run from wherever its record says it stands to its end."""
        token = self._keys.token()
        if token is None and self._keys.credentials() is None:
            await self._finish(Stop(Phase.FAILED, "no OBS token is configured"))
            return
        config = self.run.config
        try:
            async with self._instruments.connect_obs(config, token or "") as obs:
                await self._drive(obs)
        finally:
            await self._refresher.aclose()

    async def _drive(self, obs: ObsClient) -> None:
        """Calibrate, wait (refreshing the token on schedule), fire and retry."""
        config = self.run.config
        if self.run.phase != Phase.REGISTERING:
            await self._enter(Phase.CALIBRATING)
        calibrated = await calibrate(
            self._run_id, config, self.run.target_ns, obs, self._instruments
        )
        await self._emit(calibrated.payload)
        await self._report_calibration(calibrated)
        await self._warn_if_token_short()
        if not self.run.requests:
            # A run that reached registering (even with no POST logged yet) waits again
            # only if it has no trusted time to aim its first shot with.
            if self.run.phase != Phase.REGISTERING:
                await self._enter(Phase.WAITING)
                calibrated = await self._wait_for_opening(obs, calibrated)
            elif calibrated.shot is None:
                calibrated = await self._wait_for_opening(obs, calibrated)
            if calibrated.shot is None:
                advice = no_time_advice(calibrated.estimate, config.ntp_servers)
                await self._finish(Stop(Phase.FAILED, advice or "no trustworthy time"))
                return
            await self._record_lateness(calibrated)
        await self._register(obs, calibrated)

    async def _record_lateness(self, calibrated: Calibrated) -> None:
        """A run about to make its first shot after its target says so, once (9.9)."""
        late = lateness(self.run, calibrated.clock.true_ns(self._clock.mono_ns()))
        if late is not None:
            await self._emit(late, durable=False)

    async def _report_calibration(self, calibrated: Calibrated) -> None:
        payload = calibrated.payload
        await self._report_time(calibrated, None)
        if payload.rtt_error:
            await self._say(payload.rtt_error, "warning")

    async def _report_time(self, now: Calibrated, before: Calibrated | None) -> None:
        """Say what changed about the time: trust lost or won, a conflict, a kiss."""
        estimate = now.estimate
        kisses = [v for v in estimate.sources if v.verdict == Verdict.KISS and v.detail]
        for view in kisses:
            if before is None or view not in before.estimate.sources:
                await self._say(f"NTP server {view.source}: {view.detail}", "warning")
        if before is not None and before.estimate.status == estimate.status:
            return
        if not estimate.trusted:
            advice = no_time_advice(estimate, self.run.config.ntp_servers)
            await self._say(f"{advice}; trying again", "warning")
        elif estimate.status != TimeStatus.AGREED:
            margin = (now.shot.margin_ns / 1e6) if now.shot else 0.0
            what = estimate.conflict or f"time from {estimate.status}"
            await self._say(
                f"{what}: the shot waits {margin:.1f} ms for the latest credible instant", "warning"
            )
        elif before is not None:
            await self._say("the time sources agree again")

    async def _wait_for_opening(self, obs: ObsClient, calibrated: Calibrated) -> Calibrated:
        """Count down, keep the connection warm, re-check the time; return just before the shot."""
        target_ns = self.run.target_ns
        config = self.run.config
        start = self._clock.mono_ns()
        progress = WaitProgress(last_probe_ns=start, last_ntp_ns=start)
        written_ns = start  # when a calibration was last written (the run's own, just before)
        # An unreachable OBS fails every retry: say it once, then count.
        probe_failures = RepeatedFailure("keep-alive probe to OBS")
        while True:
            now = self._clock.mono_ns()
            shot = calibrated.shot.call_ns if calibrated.shot else target_ns
            self._shot_mono = calibrated.clock.mono_ns(shot)
            refresh = self._next_refresh(calibrated)
            step = next_wait_step(
                self._shot_mono,
                now,
                progress,
                settled=calibrated.estimate.status == TimeStatus.AGREED,
                jumped=calibrated.estimate.wall_jumped(now, self._clock.wall_ns()),
                refresh_ns=None if refresh is None else calibrated.clock.mono_ns(refresh.at_ns),
            )
            match step:
                case RefreshToken():
                    assert refresh is not None
                    await self._refresh(obs, refresh.kind, calibrated.clock)
                case FinalApproach():
                    # Room for the writes just before the shot, taken again now that the wait
                    # has used some; without it the shot still goes (the spare record).
                    with contextlib.suppress(OSError, StorageFailed):
                        self._journal.reserve_for_run()
                    return calibrated
                case RecheckNtp():
                    if step.jumped:
                        await self._say(
                            "the system clock jumped against the monotonic clock; "
                            "estimating the time again from fresh samples",
                            "warning",
                        )
                        sources = self._instruments.time.sources
                        sources.forget_samples()
                        # Fresh samples need a server that may be asked: at most 2 s away.
                        due = sources.next_due(config.ntp_servers)
                        await self._clock.sleep_until(
                            min(due, self._clock.mono_ns() + MIN_QUERY_INTERVAL_NS)
                        )
                    probes = list(calibrated.probes)
                    if step.probe_obs:
                        probes += await self._probe(obs, probe_failures)
                        progress = msgspec.structs.replace(progress, last_probe_ns=now)
                    estimate = await self._instruments.time.estimate(
                        config.ntp_servers, date_interval(probes)
                    )
                    replanned = calibrated.again(estimate, self._instruments.time.kernel, probes)
                    if recheck_is_news(
                        self.run.calibration,
                        replanned.payload,
                        (self._shot_mono - now) / NS,
                        (now - written_ns) / NS,
                    ):
                        # Not synced: a crash loses nothing a resume does not measure again,
                        # and no fdatasync runs this close to the shot.
                        await self._emit(replanned.payload, durable=False)
                        written_ns = now
                    await self._report_time(replanned, calibrated)
                    calibrated = replanned
                    progress = msgspec.structs.replace(
                        progress,
                        last_ntp_ns=self._clock.mono_ns(),
                        rechecks_before_shot=progress.rechecks_before_shot + int(step.before_shot),
                    )
                case ProbeObs():
                    progress = msgspec.structs.replace(progress, last_probe_ns=now)
                    fresh = await self._probe(obs, probe_failures)
                    if fresh:
                        calibrated = calibrated.again(
                            calibrated.estimate, calibrated.kernel, [*calibrated.probes, *fresh]
                        )
                case Tick():
                    await self._emit(
                        CountdownPayload(self._run_id, step.remaining_s), durable=False
                    )
                    await self._clock.sleep_until(step.wake_ns)

    async def _warn_if_token_short(self) -> None:
        """Hours ahead, not at the shot: a token that will not last, and no login to renew it."""
        warning = self._refresher.short_token_warning(self.run, self._clock.wall_ns())
        if warning is not None:
            await self._say(warning, "warning")

    def _next_refresh(self, calibrated: Calibrated) -> Refresh | None:
        return self._refresher.due(self.run, calibrated.clock.true_ns(self._clock.mono_ns()))

    async def _refresh(self, obs: ObsClient, kind: RefreshKind, clock: ClockMap) -> None:
        at_ns = clock.true_ns(self._clock.mono_ns())
        payload, warning = await self._refresher.refresh(self.run, kind, at_ns, obs)
        if warning is not None:
            await self._say(warning, "warning")
        await self._emit(payload)

    async def _probe(self, obs: ObsClient, failures: RepeatedFailure) -> list[DateProbe]:
        """A keep-alive HEAD to OBS; its Date header, if it answered with one."""
        try:
            probe = await obs.probe()
        except ObsError as exc:
            await self._say_if(failures.failed(str(exc), self._clock.mono_ns()), "warning")
            return []
        await self._say_if(failures.succeeded(self._clock.mono_ns()))
        if probe.date_epoch_s is None:
            return []
        return [DateProbe(probe.sent_mono_ns, probe.received_mono_ns, int(probe.date_epoch_s))]

    async def _register(self, obs: ObsClient, calibrated: Calibrated) -> None:
        """Fire, read, and retry as the policy says until the run ends."""
        clock = calibrated.clock
        while True:
            step = next_step(self.run, other_posts(self._journal.state, self.run))
            if isinstance(step, Stop):
                await self._finish(step)
                return
            call_ns = step.not_before_ns
            if call_ns:
                # OBS judges the spacing in true time: the estimate's lower edge must pass
                # the earliest instant too (the first shot's plan has its margin already).
                call_ns += calibrated.estimate.margin_at(self._clock.mono_ns())
            if not self.run.requests and calibrated.shot is not None:
                call_ns = max(call_ns, calibrated.shot.call_ns)
            call_mono = clock.mono_ns(call_ns)
            self._shot_mono = call_mono
            wait_s = (call_mono - self._clock.mono_ns()) / NS
            if wait_s > ANNOUNCE_WAITS_OVER_S:
                if step.not_before_ns:
                    await self._say(f"next attempt in {wait_s:.1f} s ({step.reason})")
                await self._clock.sleep_until(call_mono - int(ANNOUNCE_WAITS_OVER_S * NS))
            post = obs.prepare(step.ecrn, step.scrn)
            # After the last keep-alive probe, before the final wait: at the instant the POST
            # is one write of ready bytes (its TLS record sealed, the connection open).
            await obs.seal(post)
            planned_ns = max(call_ns, clock.true_ns(self._clock.mono_ns()))
            # Written (not synced) before the final wait: a crash after the send still
            # leaves the log knowing that a POST may have gone out, and when.
            registering = self.run.phase != Phase.REGISTERING
            await self._enter(Phase.REGISTERING, durable=False)
            attempt = len(self.run.requests) + 1
            sent = RequestArmedPayload(self._run_id, attempt, step.ecrn, step.scrn, planned_ns)
            await self._emit(sent, durable=False)
            aside: list[KeptAside] = [
                *([PhaseChangedPayload(self._run_id, Phase.REGISTERING)] if registering else []),
                sent,
            ]
            if self._unlogged is not None:
                # Before the shot: a crash during it must still leave the POST on record.
                self._keep_aside(aside)
            answer = await self._fire(obs, post, step, call_mono)
            update = answer_event(
                self._run_id, attempt, step, answer, clock, self._clock.mono_ns(), call_mono
            )
            await self._emit(update)
            if self._unlogged is not None:
                # Whatever of it the log did take is not appended twice at the next start.
                kept = self._keep_aside([*aside, update])
                raise ShotUnlogged(
                    f"the log could not be written ({self._unlogged}); attempt {attempt} was "
                    f"sent anyway at {instant(update.sent_ns or planned_ns).isoformat()} "
                    f"and {_answered(update)}; "
                    + (
                        f"kept aside in {self._journal.spare.path} for the next start"
                        if kept
                        else "it could not be kept aside either: the next start does not know it"
                    )
                )
            await self._announce(update)
            if update.outcome == Outcome.UNAUTHORIZED:
                await self._finish(Stop(Phase.FAILED, TOKEN_REFUSED))
                return

    def _keep_aside(self, payloads: list[KeptAside]) -> bool:
        """Put what the log cannot take into the spare record; whether that worked."""
        try:
            self._journal.keep_aside(payloads)
        except (OSError, ValueError):
            return False
        return True

    async def _fire(
        self, obs: ObsClient, post: PreparedPost, step: NextPost, call_mono: int
    ) -> Answer | Lost:
        # The warm-up goes to a loopback listener of our own: nothing but the POST reaches OBS.
        warmer = self._instruments.warm_send_path(step.ecrn, step.scrn, call_mono - SPIN_BASE_NS)
        with collector_paused():
            async with warmer as warm_up:
                for lead_ns in WARM_UP_LEADS_NS:
                    await self._clock.sleep_until(call_mono - lead_ns)
                    await warm_up()
                await self._clock.arrive_at(call_mono)
                return await send_post(obs, post)

    async def _announce(self, update: CrnUpdatePayload) -> None:
        await self._say(*answer_line(update))


def _answered(update: CrnUpdatePayload) -> str:
    """What OBS said to an unrecorded shot, for the line that reports it."""
    if update.detail:
        return f"got no answer: {update.detail}"
    return f"OBS answered {update.http_status}: {results_text(update) or 'no results'}"
