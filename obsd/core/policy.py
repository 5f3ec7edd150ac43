"""The retry policy: which CRNs the next POST carries, and not before when; or why to stop.

Everything here is arithmetic on the run's record (true-time nanoseconds), so the same rules
hold after a restart: the spacing is measured from the last POST in the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from obsd.core.phases import Phase
from obsd.core.results import BAN_CODE, DEBOUNCE_CODE, FINAL_STATES, CrnKind, CrnState, Outcome
from obsd.core.runs import CrnStatus, RequestRecord, RunState
from obsd.core.timing import NS

# After VAL16, or when an answer is unknown (timeout, reset: OBS may have processed it and
# started its ~3 s window), tools that work wait at least 5 s (obs-facts.md).
DEBOUNCE_SPACING_S: Final = 5.0
# VAL01/13/14/17 and ERRLoad are worth a few more tries, not an endless loop.
MAX_TRANSIENT_RESULTS: Final = 5
# After a VAL21 in another run of the token, nothing is sent for this long: the ban is the
# token's, and a POST into it would only prolong it (the stop message says "10 minutes").
BAN_WAIT_S: Final = 10 * 60.0


class NextPost(msgspec.Struct, frozen=True):
    """Send these CRNs, not before `not_before_ns` (true time)."""

    ecrn: list[str]
    scrn: list[str]
    not_before_ns: int
    reason: str


class Stop(msgspec.Struct, frozen=True):
    """The run ends in `phase` (done or failed) for `reason`."""

    phase: Phase
    reason: str


def wants_sending(status: CrnStatus, run: RunState) -> bool:
    """Whether this CRN can still gain from another POST."""
    if status.state in FINAL_STATES or status.state == CrnState.RATE_LIMITED:
        return False
    if status.state == CrnState.FULL:
        has_backup = any(c.backup_for == status.crn for c in run.crns)
        return run.config.retry_full and not has_backup
    if status.state == CrnState.TRANSIENT:
        return status.transient_results < MAX_TRANSIENT_RESULTS
    return True  # pending, not_open, debounce


def spacing_after(record: RequestRecord, retry_interval: float) -> float:
    """Seconds the next POST must wait after this one (by what it got back)."""
    if record.outcome != Outcome.ANSWERED or DEBOUNCE_CODE in record.codes.values():
        return max(DEBOUNCE_SPACING_S, retry_interval)
    return retry_interval


def budget_allows_at(sent_ns: list[int], posts: int, window_s: float) -> int:
    """The earliest instant a POST keeps at most `posts` in any `window_s` (0: at once)."""
    if len(sent_ns) < posts:
        return 0
    return sorted(sent_ns)[-posts] + int(window_s * NS)


def next_step(run: RunState, others: Sequence[RequestRecord] = ()) -> NextPost | Stop:
    """What the run does after its last answer.

    `others`: the POSTs of other runs of the same token, oldest first (state.other_posts).
    OBS's debounce is per token, not per run: a late start right after a cancelled run, or a
    watch after any POST, waits for the latest of them too.
    """
    config = run.config
    if any(c.state == CrnState.RATE_LIMITED for c in run.crns):
        return Stop(
            Phase.FAILED,
            "OBS banned this token for request volume (VAL21); wait at "
            "least 10 minutes before trying again",
        )
    sendable = [c for c in run.crns if wants_sending(c, run)]
    if not sendable:
        return Stop(Phase.DONE, "every CRN has a final result")
    if len(run.requests) >= config.max_attempts:
        waiting = ", ".join(c.crn for c in sendable)
        return Stop(
            Phase.DONE, f"max_attempts ({config.max_attempts}) reached; still open: {waiting}"
        )
    not_before = 0
    reason = "first attempt"
    if others:
        latest = others[-1]
        spacing = spacing_after(latest, config.retry_interval)
        not_before = _ended_ns(latest) + int(spacing * NS)
        reason = f"{spacing:g} s after another run's last POST"
        banned = [_ended_ns(r) for r in others if BAN_CODE in r.codes.values()]
        if banned and max(banned) + int(BAN_WAIT_S * NS) > not_before:
            not_before = max(banned) + int(BAN_WAIT_S * NS)
            reason = (
                f"OBS banned this token (VAL21) in another run: {BAN_WAIT_S / 60:g} min after it"
            )
    if run.requests:
        last = run.requests[-1]
        spacing = spacing_after(last, config.retry_interval)
        own = _ended_ns(last) + int(spacing * NS)
        if own >= not_before:
            not_before = own
            reason = f"{spacing:g} s after attempt {last.attempt}"
    # Counted, like the spacing, from the answer (or the send): a POST arrives before it is
    # answered, so OBS never sees more than budget_posts in its own window. Other runs' POSTs
    # and the wait's logins count too, one request each, but only against retries and
    # watches: held back by them, a timed run's first shot would miss its instant (a watch
    # keeps away from it: core/watch.py).
    shared = bool(run.requests) or run.watch is not None
    budget_at = budget_allows_at(
        [_ended_ns(r) for r in run.requests]
        + ([r.at_ns for r in run.refreshes] + [_ended_ns(r) for r in others] if shared else []),
        config.budget_posts,
        config.budget_window,
    )
    if budget_at > not_before:
        not_before = budget_at
        reason = f"request budget ({config.budget_posts} per {config.budget_window:g} s)"
    return NextPost(
        ecrn=[c.crn for c in sendable if c.kind == CrnKind.ECRN],
        scrn=[c.crn for c in sendable if c.kind == CrnKind.SCRN],
        not_before_ns=not_before,
        reason=reason,
    )


def _ended_ns(record: RequestRecord) -> int:
    """When OBS's windows for a POST are counted from: its answer, else its send.

    OBS starts them when the POST arrives, somewhere between our send and the answer;
    counting from the answer (or the send, if none came) never cuts them short.
    """
    return record.responded_ns or record.planned_ns
