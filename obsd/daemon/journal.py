"""The one writer path: every event is folded, written, published and (if asked) made durable.

`Journal.append` is the only way an event enters the log after start-up, and its order is the
design's: the event is folded first (the fold refuses what the phase table does not allow, so
an impossible event is never written), then written, then handed to followers, then synced;
the command that caused it is answered only after that. `EventLog` underneath is storage only.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from pathlib import Path
from typing import Final

import anyio
import msgspec

from obsd.adapters.clock import Clock
from obsd.adapters.eventlog import DEFAULT_SEGMENT_BYTES, EventLog
from obsd.adapters.spare_record import SpareRecord
from obsd.core.events import (
    Event,
    RequestSentPayload,
    encode_event,
    event_decoder,
    make_event,
)
from obsd.core.runs import KeptAside, already_recorded
from obsd.core.state import DaemonState, ImpossibleEvent, apply

logger = logging.getLogger("obsd")

# Log room a run's remaining events may need, allocated ahead (a few KiB an attempt, for far
# more attempts than OBS's limits allow): the writes just before a shot cannot hit a full disk.
RUN_LOG_RESERVE_BYTES: Final = 1024 * 1024
# Live events a follower may have queued before it is told to go back to the disk.
DEFAULT_SUBSCRIBER_QUEUE: Final = 4096


class Subscription:
    """A bounded queue of live lines for one follower; it never blocks the appender."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._queue: deque[tuple[int, bytes]] = deque()
        # The queue overflowed and was dropped: the follower must re-read the disk.
        self._overflowed = False
        self.overflows = 0
        self._wakeup: anyio.Event | None = None

    def push(self, seq: int, line: bytes) -> None:
        """Queue a new line, or drop the queue and mark the overflow when it is full."""
        if self._overflowed:
            return
        if len(self._queue) >= self._limit:
            self._queue.clear()
            self._overflowed = True
            self.overflows += 1
        else:
            self._queue.append((seq, line))
        if self._wakeup is not None:
            self._wakeup.set()

    def restart(self) -> None:
        """Forget what is queued: the follower is about to read the disk up to the head."""
        self._queue.clear()
        self._overflowed = False

    async def take(self, after_seq: int) -> list[tuple[int, bytes]] | None:
        """Wait for lines newer than `after_seq`; None means: go back to the disk."""
        while True:
            if self._overflowed:
                return None
            lines = [(seq, line) for seq, line in self._queue if seq > after_seq]
            self._queue.clear()
            if lines and lines[0][0] != after_seq + 1:
                return None  # Cannot happen while every line is pushed; the disk is safe.
            if lines:
                return lines
            self._wakeup = anyio.Event()
            try:
                await self._wakeup.wait()
            finally:
                self._wakeup = None


class Journal:
    """The folded state over an open event log, and the only path that appends to it."""

    def __init__(
        self,
        log: EventLog,
        state: DaemonState,
        clock: Clock,
        subscriber_queue: int = DEFAULT_SUBSCRIBER_QUEUE,
    ) -> None:
        self.log = log
        # Where events go that the log could not take, at a shot (see keep_aside): beside
        # the log directory, not in it, so that nothing there is anything but a segment.
        self.spare = SpareRecord(log.directory.parent)
        self._state = state
        self._clock = clock
        self._subscriber_queue = subscriber_queue
        self._subscribers: set[Subscription] = set()

    @classmethod
    def open(
        cls,
        directory: Path,
        clock: Clock,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        subscriber_queue: int = DEFAULT_SUBSCRIBER_QUEUE,
    ) -> Journal:
        """Replay the log in `directory` into a state (the log refuses what the fold refuses)."""
        replayed = [DaemonState()]

        def fold(event: Event) -> None:
            replayed[0] = apply(replayed[0], event)

        log = EventLog.open(directory, fold, segment_bytes=segment_bytes, now_ns=clock.wall_ns)
        journal = cls(log, replayed[0], clock, subscriber_queue)
        # Made now, while there is room; without it a shot the log cannot take goes unrecorded.
        with contextlib.suppress(OSError):
            journal.spare.prepare()
        return journal

    @property
    def state(self) -> DaemonState:
        """The fold of every event so far."""
        return self._state

    async def append(self, payload: msgspec.Struct, *, durable: bool = True) -> Event:
        """Fold, write and publish an event; with `durable`, return once it is fdatasync'ed."""
        self.log.check_writable()
        event = make_event(payload, self.log.head_seq + 1, self._clock.wall_ns())
        state = apply(self._state, event)  # Raises ImpossibleEvent: then nothing is written.
        line = self.log.write(event)
        self._state = state
        if state.active_run is None and not state.watches:
            self.log.release_reservation()  # No run left to keep room for.
        for subscriber in self._subscribers:
            subscriber.push(event.seq, line)
        if durable:
            await self.log.sync()
        return event

    def subscribe(self) -> Subscription:
        """Receive every line appended from now on (until `unsubscribe`)."""
        subscription = Subscription(self._subscriber_queue)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop feeding a subscription."""
        self._subscribers.discard(subscription)

    def reserve_for_run(self) -> None:
        """Allocate the log room a run's remaining events need (OSError if there is none)."""
        self.log.reserve(RUN_LOG_RESERVE_BYTES)

    def keep_aside(self, payloads: list[KeptAside]) -> None:
        """Write events the failed log cannot take to the spare record (OSError if not)."""
        now = self._clock.wall_ns()
        self.spare.write(b"".join(encode_event(make_event(p, 0, now)) for p in payloads))

    def taken_aside(self) -> list[KeptAside]:
        """The payloads kept aside at the last failure, in order (unreadable ones left out)."""
        payloads: list[KeptAside] = []
        for line in self.spare.read().splitlines():
            with contextlib.suppress(msgspec.DecodeError):
                payload = event_decoder.decode(line).payload
                if isinstance(payload, RequestSentPayload):
                    payload = payload.armed()
                if isinstance(payload, KeptAside):
                    payloads.append(payload)
        return payloads

    async def record_kept_aside(self) -> tuple[int, int]:
        """Append what a shot kept aside and the log lacks, then clear the spare record.

        Returns (appended, kept). What does not fit the log (ImpossibleEvent) is left out.
        """
        kept = self.taken_aside()
        appended = 0
        for payload in kept:
            run = self.state.runs.get(payload.run_id)
            if run is None or not run.active or already_recorded(run, payload):
                continue
            try:
                await self.append(payload)
            except ImpossibleEvent as exc:
                logger.warning("a record kept aside at a shot does not fit the log: %s", exc)
                continue
            appended += 1
        if kept:
            try:
                self.spare.write(b"")
            except OSError as exc:
                # Harmless: what is on record now is never appended twice.
                logger.warning("could not clear %s: %s", self.spare.path, exc)
        return appended, len(kept)
