"""A whole run in process: a fake clock, a scripted OBS behind httpx.MockTransport, fake NTP.

Like httpcore's mock backend and trio's MockClock: every answer OBS gives is scripted, every
wait jumps, and the arrival of each request is stamped in true time, so the rules (never
early, the spacing, the budget) can be judged exactly and hours of schedule take milliseconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any, Final

import h11
import httpx
import msgspec

from obsd.adapters.http_wire import Outgoing
from obsd.adapters.itu_login import ItuSession
from obsd.adapters.obs_client import ObsClient, fetch_public
from obsd.adapters.send_path import WarmUp
from obsd.core.clock_select import KernelClock
from obsd.core.config import Config
from obsd.core.events import Actor, Event, Message, RunCreatedPayload
from obsd.core.login import Credentials
from obsd.core.ntp_packet import encode_query
from obsd.core.runs import RunState
from obsd.core.time_sources import Exchange
from obsd.core.token import TokenInfo
from obsd.daemon.driver import RunDriver
from obsd.daemon.instruments import Instruments
from obsd.daemon.journal import Journal
from obsd.daemon.timekeeper import NtpExchange, TimeKeeper
from obsd.sim import NtpBehaviour
from obsd.sim.ntp import parse_query, reply_for
from tests.fake_clock import NS, FakeClock
from tests.obs_wire import TransportWire

RUN_ID: Final = "run-1"
# True time runs this far ahead of the fake wall clock, and NTP says so.
TRUE_OFFSET_NS: Final = 2_500_000_000
MS: Final = 1_000_000
NTP_ROUND_TRIP_NS: Final = MS // 10
# The fake NTP servers' names: the i-th behaves as the i-th behaviour it is given.
SERVERS: Final = tuple(f"ntp{i}.test:123" for i in range(8))
# As this machine's kernel reports itself: never synchronised, a 16 s error bound.
UNSYNCHRONISED_KERNEL: Final = KernelClock(False, 16_000_000, 16_000_000)
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
    # HEAD answers carry a Date header this far from true time (None: no Date header).
    date_skew_s: float | None = None
    arrivals: list[Arrival] = field(default_factory=list)
    # The public schedule's pages (GET /public/...), for watch runs.
    pages: Callable[[httpx.Request], httpx.Response] | None = None

    def handle(self, request: httpx.Request) -> httpx.Response:
        true_ns = self.clock.true_ns()
        body = msgspec.json.decode(request.content) if request.method == "POST" else None
        self.arrivals.append(Arrival(request.method, true_ns, body))
        if request.method == "GET" and request.url.path.startswith("/public/"):
            if self.pages is None:
                raise AssertionError(f"an unscripted page: {request.url}")
            return self.pages(request)
        if request.method == "HEAD":
            if self.head_failure is not None:
                raise self.head_failure
            if self.date_skew_s is None:
                return httpx.Response(405)
            second = (true_ns + round(self.date_skew_s * NS)) // NS
            return httpx.Response(405, headers={"Date": formatdate(second, usegmt=True)})
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

    @property
    def page_reads(self) -> list[Arrival]:
        """The GETs of public pages, in arrival order."""
        return [a for a in self.arrivals if a.method == "GET"]


def fake_ntp(
    clock: FakeClock, behaviours: list[NtpBehaviour], log: list[tuple[str, int]]
) -> NtpExchange:
    """NTP servers as the simulator scripts them (the i-th server behaves as behaviours[i]),
    answered in real packets after their round trip (0.1 ms unless scripted) on the fake
    clock; each query is logged with its true time."""
    cookies = random.Random(7)

    async def exchange(servers: list[str]) -> list[Exchange]:
        found = []
        for server in servers:
            behaviour = behaviours[SERVERS.index(server)]
            round_trip = round(behaviour.delay_s * NS) or NTP_ROUND_TRIP_NS
            cookie = cookies.getrandbits(64)
            sent = clock.mono_ns()
            log.append((server, clock.true_ns()))
            query = parse_query(encode_query(cookie))
            assert query is not None
            true = clock.true_ns() + round_trip // 2
            reply = reply_for(behaviour, query, true, true)
            clock.advance(round_trip / NS)
            error = None if reply is not None else "no answer within 1.5 s"
            found.append(
                Exchange(server, cookie, sent, clock.mono_ns(), clock.wall_ns(), reply, error)
            )
        return found

    return exchange


def instruments(
    clock: FakeClock,
    obs: ScriptedObs,
    ntp: list[NtpBehaviour],
    kernel: KernelClock,
    log: list[tuple[str, int]],
    warm_ups: list[int],
    seals: list[tuple[str, int]],
) -> Instruments:
    """Scripted NTP servers, the kernel's view, no send delay, warm-ups and seals logged, the
    scripted OBS."""

    async def send_delay(ecrn: list[str], scrn: list[str]) -> int:
        return 0

    @contextlib.asynccontextmanager
    async def warm_send_path(
        ecrn: list[str], scrn: list[str], deadline_mono_ns: int
    ) -> AsyncIterator[WarmUp]:
        async def warm_up() -> None:
            warm_ups.append(clock.true_ns())

        yield warm_up

    def connect(config: Config, token: str) -> ObsClient:
        transport = httpx.MockTransport(obs.handle)

        def sealed(outgoing: Outgoing) -> None:
            head = outgoing.events[0]
            assert isinstance(head, h11.Request)
            seals.append((head.method.decode(), clock.true_ns()))

        wire = TransportWire(config.obs_base_url, transport, clock, sealed)
        return ObsClient.for_config(config, token, clock, transport, wire)

    return Instruments(
        time=TimeKeeper(clock, fake_ntp(clock, ntp, log), lambda: kernel),
        send_delay=send_delay,
        warm_send_path=warm_send_path,
        connect_obs=connect,
        # The single sign-on goes through the same scripted transport as OBS.
        sign_on=lambda config: ItuSession(config.obs_base_url, httpx.MockTransport(obs.handle)),
        fetch_public=lambda base_url, target: fetch_public(
            base_url, target, clock, httpx.MockTransport(obs.handle)
        ),
    )


@dataclass
class FixedKeys:
    """A run's keys in tests: a fixed token, İTÜ credentials if given, what was kept."""

    fixed: str | None = "token"
    login: Credentials | None = None
    kept: list[str] = field(default_factory=list)
    info: TokenInfo | None = None

    def token(self) -> str | None:
        return self.kept[-1] if self.kept else self.fixed

    def token_info(self) -> TokenInfo | None:
        return self.info

    def credentials(self) -> Credentials | None:
        return self.login

    def keep(self, token: str) -> None:
        self.kept.append(token)


@dataclass
class Drive:
    """One run on a real journal, with its clock, its OBS and the instant it aims at."""

    journal: Journal
    clock: FakeClock
    obs: ScriptedObs
    target_ns: int
    ntp: list[NtpBehaviour]
    kernel: KernelClock = UNSYNCHRONISED_KERNEL
    # Every NTP query: the server, and the true time it was sent.
    ntp_queries: list[tuple[str, int]] = field(default_factory=list)
    # Every warm-up of the send path (it never reaches OBS): the true time it was made.
    warm_ups: list[int] = field(default_factory=list)
    # Every request sealed for the wire (its method), and the true time it was sealed.
    seals: list[tuple[str, int]] = field(default_factory=list)
    run_id: str = RUN_ID

    @property
    def run(self) -> RunState:
        """The run's record."""
        return self.journal.state.runs[self.run_id]

    def driver(self) -> RunDriver:
        """A driver for the run (a fresh one is what a restart makes)."""
        return RunDriver(
            self.journal,
            self.run_id,
            FixedKeys(),
            self.clock,
            instruments(
                self.clock,
                self.obs,
                self.ntp,
                self.kernel,
                self.ntp_queries,
                self.warm_ups,
                self.seals,
            ),
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
    ntp: list[NtpBehaviour] | None = None,
    kernel: KernelClock = UNSYNCHRONISED_KERNEL,
    true_offset_ns: int = TRUE_OFFSET_NS,
    date_skew_s: float | None = None,
    **config: Any,
) -> Drive:
    """A run created `wait_s` before its target, with `config` over a small default plan."""
    clock = FakeClock(true_offset_ns=true_offset_ns)
    journal = Journal.open(directory, clock)
    target = clock.true_ns() + int(wait_s * NS)
    behaviours = ntp or [NtpBehaviour()]
    servers = list(SERVERS[: len(behaviours)])
    plan = msgspec.convert({"ecrn": ["21234"], "scrn": [], "ntp_servers": servers} | config, Config)
    await journal.append(
        RunCreatedPayload(
            RUN_ID, Actor(0, 1), plan, TokenInfo(fingerprint="sha256:x", exp=None), target
        )
    )
    obs = ScriptedObs(clock, answers, date_skew_s=date_skew_s)
    return Drive(journal, clock, obs, target, behaviours, kernel)


async def planned_next(
    drive: Drive, run_id: str, answers: list[Answer], wait_s: float, **config: Any
) -> Drive:
    """Another run on the same journal, clock and transport, after `drive`'s has ended."""
    target = drive.clock.true_ns() + int(wait_s * NS)
    await drive.journal.append(
        RunCreatedPayload(
            run_id,
            Actor(0, 1),
            msgspec.structs.replace(drive.run.config, **config),
            TokenInfo(fingerprint="sha256:x", exp=None),
            target,
        )
    )
    drive.obs.answers += answers
    return dataclasses.replace(drive, target_ns=target, run_id=run_id)
