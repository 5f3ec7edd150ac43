"""One registration POST and what came back, as the drivers of both kinds of run record it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from obsd.adapters.obs_client import Answer, ObsClient, ObsError, ObsTimeout, PreparedPost
from obsd.core.events import CrnUpdatePayload, Level
from obsd.core.obs_answer import read_response
from obsd.core.policy import NextPost
from obsd.core.results import Outcome
from obsd.core.timing import ClockMap

# Why a run ends at a 401: nothing but a fresh token helps, and a retry would only be refused.
TOKEN_REFUSED: Final = (
    "OBS refused the token (401): log in again, configure the new token and start a new run"
)


@dataclass(frozen=True, slots=True)
class Lost:
    """A POST whose answer never came: why, and when it was handed to the connection."""

    detail: str
    sent_mono_ns: int | None


async def send_post(obs: ObsClient, post: PreparedPost) -> Answer | Lost:
    """Send a prepared POST; a lost answer is a value, since OBS may have processed it."""
    try:
        return await obs.send(post)
    except ObsTimeout as exc:
        return Lost(
            "no answer within the read timeout; the POST may have been processed",
            exc.sent_mono_ns,
        )
    except ObsError as exc:
        return Lost(
            f"the connection failed ({exc}); the POST may have been processed", exc.sent_mono_ns
        )


def answer_event(
    run_id: str,
    attempt: int,
    step: NextPost,
    answer: Answer | Lost,
    clock: ClockMap,
    now_mono_ns: int,
    call_mono_ns: int,
) -> CrnUpdatePayload:
    """Turn what came back into an event: results, or why there are none."""
    if isinstance(answer, Lost):
        # responded_ns: when the attempt was given up, which later spacing counts from.
        return CrnUpdatePayload(
            run_id=run_id,
            attempt=attempt,
            outcome=Outcome.UNKNOWN,
            http_status=None,
            sent_ns=clock.true_ns(answer.sent_mono_ns or call_mono_ns),
            responded_ns=clock.true_ns(now_mono_ns),
            results=[],
            detail=answer.detail,
        )
    reading = read_response(answer.http_status, answer.body, step.ecrn, step.scrn)
    return CrnUpdatePayload(
        run_id=run_id,
        attempt=attempt,
        outcome=reading.outcome,
        http_status=answer.http_status,
        sent_ns=clock.true_ns(answer.sent_mono_ns),
        responded_ns=clock.true_ns(answer.received_mono_ns),
        results=reading.results,
        detail=reading.detail,
    )


def answer_line(update: CrnUpdatePayload) -> tuple[str, Level]:
    """The line that tells the person following the run what an attempt got back."""
    if update.detail:
        return f"attempt {update.attempt}: {update.detail}", "warning"
    latency = ""
    if update.sent_ns is not None and update.responded_ns is not None:
        latency = f" in {(update.responded_ns - update.sent_ns) / 1e6:.0f} ms"
    return f"attempt {update.attempt} answered{latency}: {results_text(update)}", "info"


def results_text(update: CrnUpdatePayload) -> str:
    """Each CRN with the state an answer gave it: "21234 success, 20456 full"."""
    return ", ".join(f"{r.crn} {r.state}" for r in update.results)
