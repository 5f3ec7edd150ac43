"""Telling people: live events and `health` problems become notices, delivered clear of shots.

What is worth a notice and when one may go out is decided in the core (obsd/core/notices.py);
this module follows the log like a tail does, asks `health` now and then while a run waits,
and hands notices to the channels from a task of its own, so that the engine never waits for
a command or an HTTP request, and a failed delivery never reaches the run.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final

import anyio
import anyio.abc

from obsd.adapters.clock import Clock
from obsd.adapters.notifiers import Channel
from obsd.core.events import Countdown, TokenRefreshFailed, event_decoder
from obsd.core.notices import (
    ATTENTION_PER_RUN,
    DELIVERY_TIMEOUT_S,
    QUEUE_LIMIT,
    Notice,
    NoticeKind,
    attention,
    may_deliver,
    notice_for,
    problem_key,
    run_before_target,
    still_news,
)
from obsd.core.status_text import true_now_ns
from obsd.daemon.journal import Journal, Subscription

logger = logging.getLogger("obsd.notify")

# `health` is asked after each event (but countdowns) and this often while a run waits: a disk
# filling or a token running out is news within minutes; the question costs a statfs.
HEALTH_EVERY_S: Final = 60.0


class Notifications:
    """Notices for one daemon: found in its log and `health`, sent through `channels`."""

    def __init__(
        self,
        journal: Journal,
        clock: Clock,
        channels: Sequence[Channel],
        problems: Callable[[], list[str]],
        instance: str | None = None,
        setup_problems: Sequence[str] = (),
    ) -> None:
        self._journal = journal
        self._clock = clock
        self._channels = list(channels)
        self._problems = problems
        self._instance = instance
        self._setup_problems = list(setup_problems)
        self._queue: deque[Notice] = deque()
        self._queued = anyio.Event()
        self._health_due = anyio.Event()
        self._changed = anyio.Event()  # set by each line of the log
        self._errors: set[str] = set()
        # Attention already given, per run: each different problem once.
        self._told: dict[str, set[str]] = {}
        # Channels whose last delivery failed, with why: logged once, shown by `health`.
        self.failing: dict[str, str] = {}
        self.dropped = 0

    def problems(self) -> list[str]:
        """What is wrong with notifying, for `health`."""
        return [*self._setup_problems, *self.failing.values()]

    def _true_now_ns(self) -> int:
        return true_now_ns(self._journal.state, self._clock.wall_ns())

    def offer(self, notice: Notice) -> None:
        """Queue a notice (attention at most once per problem and run) for delivery."""
        # A failed refresh is always told (a run makes four at most): its token is at stake.
        refresh_failed = isinstance(notice.event, TokenRefreshFailed)
        if notice.kind == NoticeKind.ATTENTION and notice.run_id is not None and not refresh_failed:
            told = self._told.setdefault(notice.run_id, set())
            key = problem_key(notice.message)
            if key in told or len(told) >= ATTENTION_PER_RUN:
                return
            told.add(key)
        if len(self._queue) >= QUEUE_LIMIT:
            self.dropped += 1
            if self.dropped == 1:
                logger.warning("notices pile up undelivered; later ones are dropped")
            return
        self._queue.append(notice)
        self._queued.set()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Follow the log, ask `health` while a run waits, and deliver; until cancelled.

        Started (task_status) once it follows the log: nothing appended after is missed.
        """
        if not self._channels:
            task_status.started()
            return
        journal = self._journal
        subscription = journal.subscribe()
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._follow_log, subscription, journal.log.head_seq)
                tasks.start_soon(self._ask_health)
                tasks.start_soon(self._deliver)
                task_status.started()
        finally:
            journal.unsubscribe(subscription)

    async def _follow_log(self, subscription: Subscription, cursor: int) -> None:
        journal = self._journal
        while True:
            lines = await subscription.take(cursor)
            if lines is None:
                # Fell behind the queue (never so far): what was missed is not told.
                logger.warning("notifications fell behind the log; some events not told")
                subscription.restart()
                cursor = journal.log.head_seq
                continue
            for seq, line in lines:
                cursor = seq
                self._changed.set()
                try:
                    event = event_decoder.decode(line)
                    notice = notice_for(event, journal.state, self._instance)
                except Exception:  # Telling people must never stop the daemon.
                    self._failed_once("could not read an event for notices")
                    continue
                if notice is not None:
                    self.offer(notice)
                if not isinstance(event, Countdown):
                    # A new token or plan can change what `health` says: ask it now.
                    self._health_due.set()

    def _failed_once(self, what: str) -> None:
        if what not in self._errors:
            self._errors.add(what)
            logger.exception("%s; notices go on without it", what)

    async def _ask_health(self) -> None:
        while True:
            state = self._journal.state
            run = run_before_target(state)
            # Near the shot nothing could be delivered anyway: the loop stays quiet.
            if run is not None and may_deliver(state, self._true_now_ns()):
                own = set(self.problems())  # Failing notifications are no news to notify.
                try:
                    problems = self._problems()
                except Exception:  # An unreadable disk is no reason to stop the daemon.
                    self._failed_once("could not ask health")
                    problems = []
                for problem in problems:
                    if problem not in own:
                        self.offer(attention(problem, run, self._instance))
            with anyio.move_on_after(HEALTH_EVERY_S):
                await self._health_due.wait()
            self._health_due = anyio.Event()

    async def _deliver(self) -> None:
        while True:
            await self._queued.wait()
            self._queued = anyio.Event()
            while self._queue:
                if not may_deliver(self._journal.state, self._true_now_ns()):
                    # Held until the log moves on (the run registers, ends, or is cancelled):
                    # nothing wakes here on a timer near the shot.
                    self._changed = anyio.Event()
                    await self._changed.wait()
                    continue
                notice = self._queue.popleft()
                if not still_news(notice, self._journal.state):
                    continue  # Held past the target: the run's end tells the rest.
                async with anyio.create_task_group() as tasks:
                    for channel in self._channels:
                        tasks.start_soon(self._send, channel, notice)

    async def _send(self, channel: Channel, notice: Notice) -> None:
        problem = await channel.deliver(notice, DELIVERY_TIMEOUT_S)
        if problem is None:
            if self.failing.pop(channel.name, None) is not None:
                logger.info("%s works again", channel.name)
            return
        if channel.name not in self.failing:
            logger.warning("%s; notices keep being tried, later failures are not logged", problem)
        self.failing[channel.name] = problem
