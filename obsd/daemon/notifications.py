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
from obsd.core.events import Countdown, event_decoder
from obsd.core.notices import (
    ATTENTION_PER_RUN,
    DELIVERY_TIMEOUT_S,
    QUEUE_LIMIT,
    Notice,
    NoticeKind,
    attention,
    may_deliver,
    notice_for,
    run_before_target,
    still_news,
)
from obsd.core.status_text import true_now_ns
from obsd.core.timing import NS
from obsd.daemon.journal import Journal, Subscription

logger = logging.getLogger("obsd.notify")

# `health` is asked after each event (but countdowns) and this often while a run waits: a disk
# filling or a token running out is news within minutes; the question costs a statfs.
HEALTH_EVERY_S: Final = 60.0
# A held notice is looked at again this often, to go out soon after a quiet spell ends.
HELD_RECHECK_S: Final = 1.0


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
        if notice.kind == NoticeKind.ATTENTION and notice.run_id is not None:
            told = self._told.setdefault(notice.run_id, set())
            if notice.message in told or len(told) >= ATTENTION_PER_RUN:
                return
            told.add(notice.message)
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
                event = event_decoder.decode(line)
                notice = notice_for(event, journal.state, self._instance)
                if notice is not None:
                    self.offer(notice)
                if not isinstance(event, Countdown):
                    # A new token or plan can change what `health` says: ask it now.
                    self._health_due.set()

    async def _ask_health(self) -> None:
        while True:
            state = self._journal.state
            run = run_before_target(state)
            # Near the shot nothing could be delivered anyway: the loop stays quiet.
            if run is not None and may_deliver(state, self._true_now_ns()):
                own = set(self.problems())  # Failing notifications are no news to notify.
                for problem in self._problems():
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
                    await self._clock.sleep_until(self._clock.mono_ns() + int(HELD_RECHECK_S * NS))
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
