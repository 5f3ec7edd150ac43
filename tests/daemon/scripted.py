"""A whole run in process: a fake clock, a scripted OBS behind httpx.MockTransport, fake NTP.

Like httpcore's mock backend and trio's MockClock: every answer OBS gives is scripted, every
wait jumps, and the arrival of each request is stamped in true time, so the rules (never
early, the spacing, the budget) can be judged exactly and hours of schedule take milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import msgspec

from obsd.adapters.obs_client import ObsClient
from obsd.core.config import Config
from obsd.core.events import Actor, Event, Message, RunCreatedPayload
from obsd.core.runs import RunState
from obsd.core.timing import NtpSample
from obsd.core.token import TokenInfo
from obsd.daemon.driver import RunDriver
from obsd.daemon.instruments import Instruments
from obsd.daemon.journal import Journal
from tests.fake_clock import NS, FakeClock

RUN_ID: Final = "run-1"
# True time runs this far ahead of the fake wall clock, and NTP says so.
TRUE_OFFSET_NS: Final = 2_500_000_000
MS: Final = 1_000_000
# Each scripted answer takes this long to come back (on the fake clock).
DEFAULT_LATENCY_S: Final = 0.2

# A scripted answer: a Response, an exception to raise (timeout, reset), or a callable making one.
Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def obs_answer(ecrn: dict[str, str], scrn: dict[str, str] | None = None) -> httpx.Response:
    """OBS's JSON answer: CRN -> result code, for the adds and the drops."""

    def items(codes: dict[str, str]) -> list[dict[str, Any]]:
        return [
            {
                "crn": crn,
                "statusCode": 0 if code == "successResult" else 1,
                "resultCode": code,
                "resultData": None,
                "operationFinished": True,
            }
            for crn, code in codes.items()
        ]

    return httpx.Response(
        200, json={"ecrnResultList": items(ecrn), "scrnResultList": items(scrn or {})}
    )


@dataclass
class Arrival:
    """A request as OBS saw it: method, when (true time) and the body of a POST."""

    method: str
    true_ns: int
    body: dict[str, Any] | None


@dataclass
class ScriptedObs:
    """Answers HEAD with 405 (or `head_failure`), and each POST with the next scripted answer."""

    clock: FakeClock
    answers: list[Answer]
    latency_s: float = DEFAULT_LATENCY_S
    head_failure: Exception | None = None
    arrivals: list[Arrival] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        true_ns = self.clock.wall_ns() + TRUE_OFFSET_NS
        body = msgspec.json.decode(request.content) if request.method == "POST" else None
        self.arrivals.append(Arrival(request.method, true_ns, body))
        if request.method == "HEAD":
            if self.head_failure is not None:
                raise self.head_failure
            return httpx.Response(405)
        if not self.answers:
            raise AssertionError(f"an unscripted POST: {body}")
        answer = self.answers.pop(0)
        self.clock.advance(self.latency_s)
        if isinstance(answer, Exception):
            raise answer
        return answer if isinstance(answer, httpx.Response) else answer(request)

    @property
    def posts(self) -> list[Arrival]:
        """The POSTs, in arrival order."""
        return [a for a in self.arrivals if a.method == "POST"]


def instruments(clock: FakeClock, obs: ScriptedObs, ntp_answers: bool = True) -> Instruments:
    """NTP that knows the true offset (or never answers), no send delay, the scripted OBS."""

    async def ntp(servers: tuple[str, ...]) -> tuple[list[NtpSample], list[str]]:
        if not ntp_answers:
            return [], [f"{servers[0]}: No response received"]
        return [NtpSample(servers[0], TRUE_OFFSET_NS, MS // 10)], []

    async def send_delay(ecrn: list[str], scrn: list[str]) -> int:
        return 0

    def connect(config: Config, token: str) -> ObsClient:
        return ObsClient.for_config(config, token, clock, httpx.MockTransport(obs.handle))

    return Instruments(ntp=ntp, send_delay=send_delay, connect_obs=connect)


@dataclass
class Drive:
    """One run on a real journal, with its clock, its OBS and the instant it aims at."""

    journal: Journal
    clock: FakeClock
    obs: ScriptedObs
    target_ns: int
    ntp_answers: bool = True

    @property
    def run(self) -> RunState:
        """The run's record."""
        return self.journal.state.runs[RUN_ID]

    def driver(self) -> RunDriver:
        """A driver for the run (a fresh one is what a restart makes)."""
        return RunDriver(
            self.journal,
            RUN_ID,
            lambda: "token",
            self.clock,
            instruments(self.clock, self.obs, self.ntp_answers),
        )

    async def to_the_end(self) -> RunState:
        """Drive the run until it ends; return its record."""
        await self.driver().drive()
        return self.run

    def said(self) -> list[str]:
        """Every `log` message of the run, in order."""
        return [event.payload.message for event in self.events() if isinstance(event, Message)]

    def events(self) -> Iterator[Event]:
        """Every event in the log."""
        from obsd.core.events import event_decoder

        for path in sorted(self.journal.log.directory.glob("*.jsonl")):
            for line in path.read_bytes().splitlines():
                yield event_decoder.decode(line)


async def planned(
    directory: Path,
    answers: list[Answer],
    *,
    wait_s: float = 30.0,
    ntp_answers: bool = True,
    **config: Any,
) -> Drive:
    """A run created `wait_s` before its target, with `config` over a small default plan."""
    clock = FakeClock()
    journal = Journal.open(directory, clock)
    target = clock.wall_ns() + TRUE_OFFSET_NS + int(wait_s * NS)
    plan = msgspec.convert({"ecrn": ["21234"], "scrn": []} | config, Config)
    await journal.append(
        RunCreatedPayload(
            RUN_ID, Actor(0, 1), plan, TokenInfo(fingerprint="sha256:x", exp=None), target
        )
    )
    return Drive(journal, clock, ScriptedObs(clock, answers), target, ntp_answers)
