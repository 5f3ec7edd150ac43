"""The simulated OBS's endpoints: routing, tokens, faults and the request record (no sockets).

Every request except the admin ones (`/_sim/...`) is recorded with its true-time instants.
A registration POST counts toward the debounce and volume limits only once it is attributed
(valid token) and parsed (valid JSON body): a 401 or 400 comes from OBS's front, not its rules.
Scripted faults are described in `obsd.sim.faults`.
The record and the registration state are guarded by one lock, so that a thread other than
the event loop's (see `Simulator.serve_in_thread`) may read them at any time.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

import msgspec

from obsd.core.timing import NS
from obsd.core.token import fingerprint
from obsd.sim.clock import SimClock
from obsd.sim.config import SimConfig
from obsd.sim.faults import FaultPlan
from obsd.sim.http11 import BadRequest, HttpRequest, Reply
from obsd.sim.rules import Registrar, SimState
from obsd.sim.schedule import PublicSchedule
from obsd.sim.sso import SingleSignOn
from obsd.sim.tokens import TokenRejected, verify_token

REGISTRATION_PATHS: Final = frozenset({"/api/ders-kayit/v21", "/api/ders-kayit/v21/"})
AUTH_CHECK_PATH: Final = "/api/ogrenci/OgrenciYetkiListesi"
OPENING_CHECK_PATH: Final = "/api/ogrenci/Takvim/KayitZamaniKontrolu"
ADMIN_PREFIX: Final = "/_sim/"
RECORDS_PATH: Final = "/_sim/requests"
STATE_PATH: Final = "/_sim/state"
# Enough for hours of benchmark runs; the oldest records go first beyond it.
MAX_RECORDS: Final = 50_000
_FAULT_STATUS: Final = {"http_500": 500, "http_503": 503, "expired": 401}
# What IIS itself answers when OBS's application queue is full (seen at real openings).
IIS_503_PAGE: Final = (
    b'<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">\r\n'
    b"<HTML><HEAD><TITLE>Service Unavailable</TITLE>\r\n"
    b'<META HTTP-EQUIV="Content-Type" Content="text/html; charset=us-ascii"></HEAD>\r\n'
    b"<BODY><h2>Service Unavailable</h2>\r\n<hr><p>HTTP Error 503. The service is unavailable."
    b"</p>\r\n</BODY></HTML>\r\n"
)
# msgspec raises RecursionError, not DecodeError, on very deeply nested JSON.
_UNDECODABLE: Final = (msgspec.DecodeError, RecursionError)


class RequestRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One request as the simulator saw it; instants are true time in epoch nanoseconds."""

    seq: int
    # Which TCP connection carried it (1-based, in order of acceptance): shows keep-alive reuse.
    connection: int
    # The first byte reached the server.
    received_ns: int
    # `received_ns` plus the injected request delay: when "OBS" sees the request.
    arrival_ns: int
    method: str
    path: str
    token_fingerprint: str | None
    subject: str | None
    # 1-based count of registration POSTs, the numbering fault rules use.
    post_number: int | None
    # The request body as JSON, or as text if it is not JSON; None when empty.
    body: Any
    # None when the connection was reset instead of answered.
    status: int | None
    response: Any
    fault: str | None


@dataclass(frozen=True, slots=True)
class _Outcome:
    reply: Reply
    subject: str | None = None
    post_number: int | None = None
    fault: str | None = None


class _RegistrationBody(msgspec.Struct, frozen=True, rename="upper"):
    ecrn: list[str] = []
    scrn: list[str] = []


def _json_reply(status: int, value: object, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, msgspec.json.encode(value), headers)


def _message(status: int, text: str) -> Reply:
    return _json_reply(status, {"message": text})


def _as_json_or_text(data: bytes) -> Any:
    if not data:
        return None
    try:
        return msgspec.json.decode(data)
    except _UNDECODABLE:
        return data.decode("utf-8", errors="replace")


class SimApp:
    """Answers parsed requests; owns the registrar, the fault plan and the record."""

    def __init__(self, config: SimConfig, clock: SimClock, key: bytes) -> None:
        self._config = config
        self._clock = clock
        self._key = key
        self._registrar = Registrar(config)
        self._faults = FaultPlan(config.faults, config.seed)
        # Its own stream, so that fault draws never shift the injected delays.
        self._random = random.Random(f"network:{config.seed}")
        self._processing_random = random.Random(f"processing:{config.seed}")
        self._lock = threading.Lock()
        self._records: deque[RequestRecord] = deque(maxlen=MAX_RECORDS)
        self._seq = 0
        self._posts = 0
        self._sso_requests = 0
        self._routes: dict[str, tuple[str, Callable[[HttpRequest, int], _Outcome]]] = {
            path: ("POST", self._register) for path in REGISTRATION_PATHS
        }
        self._routes[AUTH_CHECK_PATH] = ("GET", self._check_token)
        self._routes[OPENING_CHECK_PATH] = ("GET", self._check_opening)
        self._sso = SingleSignOn(config, key)
        for path, methods in self._sso.routes().items():
            self._routes[path] = (methods, self._sign_on)
        self._schedule = PublicSchedule(config, self._registrar)
        for path, methods in self._schedule.routes().items():
            self._routes[path] = (methods, self._public_schedule)

    @staticmethod
    def is_admin(request: HttpRequest) -> bool:
        """Admin requests skip the injected network and are not recorded."""
        return request.path.startswith(ADMIN_PREFIX)

    def arrival_ns(self, received_ns: int) -> int:
        """When "OBS" sees a request whose first byte reached the server at `received_ns`."""
        return received_ns + round(
            self._draw(self._config.request_delay_s, self._config.request_jitter_s) * NS
        )

    def _draw(self, delay_s: float, jitter_s: float) -> float:
        if jitter_s == 0:
            return delay_s
        return max(0.0, delay_s + self._random.uniform(-jitter_s, jitter_s))

    def respond(self, request: HttpRequest, arrival_ns: int, connection: int) -> Reply:
        """Answer one request that "OBS" sees at true time `arrival_ns`, and record it."""
        if self.is_admin(request):
            return self._admin(request)
        with self._lock:
            route = self._routes.get(request.path)
            if route is None:
                outcome = _Outcome(_message(404, "Not Found"))
            elif request.method not in route[0].split():
                allowed = route[0].replace(" ", ", ")
                outcome = _Outcome(
                    replace(_message(405, "Method Not Allowed"), headers=(("Allow", allowed),))
                )
            else:
                outcome = route[1](request, arrival_ns)
            if request.method == "HEAD":
                outcome = replace(outcome, reply=replace(outcome.reply, body=b""))
            self._record(
                connection,
                request.method,
                request.path,
                request.headers.get("authorization"),
                SingleSignOn.redacted(request)
                if route and route[1] == self._sign_on
                else request.body,
                request.received_ns,
                arrival_ns,
                outcome,
            )
        reply = outcome.reply
        if reply.reset:
            return reply
        delay_s = self._draw(self._config.response_delay_s, self._config.response_jitter_s)
        return replace(reply, hold_s=reply.hold_s + delay_s)

    def refuse(self, error: BadRequest, connection: int) -> Reply:
        """Answer bytes that were not a request, and record them."""
        reply = _message(error.status, error.reason)
        with self._lock:
            self._record(
                connection, "", "", None, b"", error.received_ns, error.received_ns, _Outcome(reply)
            )
        return reply

    def _record(
        self,
        connection: int,
        method: str,
        path: str,
        authorization: str | None,
        body: bytes,
        received_ns: int,
        arrival_ns: int,
        outcome: _Outcome,
    ) -> None:
        self._seq += 1
        reply = outcome.reply
        token = authorization.partition(" ")[2].strip() if authorization else ""
        self._records.append(
            RequestRecord(
                seq=self._seq,
                connection=connection,
                received_ns=received_ns,
                arrival_ns=arrival_ns,
                method=method,
                path=path,
                token_fingerprint=fingerprint(token) if token else None,
                subject=outcome.subject,
                post_number=outcome.post_number,
                body=_as_json_or_text(body),
                status=None if reply.reset else reply.status,
                response=None if reply.reset else _as_json_or_text(reply.body),
                fault=outcome.fault,
            )
        )

    def _subject(self, request: HttpRequest, arrival_ns: int) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            return verify_token(token.strip(), arrival_ns / NS, key=self._key).sub
        except TokenRejected:
            return None

    def _register(self, request: HttpRequest, arrival_ns: int) -> _Outcome:
        self._posts += 1
        post = self._posts
        rule = self._faults.choose(post)
        fault = None if rule is None else rule.kind
        subject = self._subject(request, arrival_ns)
        if fault == "reset":
            return _Outcome(Reply(0, b"", reset=True), subject, post, fault)
        if fault == "iis_503":
            page = Reply(503, IIS_503_PAGE, content_type="text/html; charset=us-ascii")
            return _Outcome(page, subject, post, fault)
        server_now_ns = self._clock.server_ns(arrival_ns)
        if fault in _FAULT_STATUS:
            if subject is not None:
                self._registrar.count_post(subject, server_now_ns)
            status = _FAULT_STATUS[fault]
            reply = _message(status, "Unauthorized" if status == 401 else "Server Error")
            return _Outcome(reply, subject, post, fault)
        if subject is None:
            return _Outcome(_message(401, "Unauthorized"), post_number=post, fault=fault)
        try:
            body = msgspec.json.decode(request.body, type=_RegistrationBody)
        except _UNDECODABLE as exc:
            return _Outcome(_message(400, f"bad body: {exc}"), subject, post, fault)
        turns_ns, done_s = self._processing(len(body.scrn) + len(body.ecrn))
        result = self._registrar.register(subject, body.ecrn, body.scrn, server_now_ns, turns_ns)
        # The answer leaves when the last CRN is done.
        reply = replace(_json_reply(200, result), hold_s=done_s)
        if rule is not None and fault == "slow":
            reply = replace(reply, hold_s=done_s + rule.slow_s)
        elif fault == "malformed_json":
            reply = replace(reply, body=reply.body[: len(reply.body) // 2])
        elif fault == "reset_after":
            reply = replace(reply, reset=True)
        return _Outcome(reply, subject, post, fault)

    def _processing(self, count: int) -> tuple[list[int], float]:
        """When each of `count` CRNs gets its turn after the arrival (ns), and when all are done."""
        low, high = self._config.crn_processing_s
        turns: list[int] = []
        elapsed_s = 0.0
        for _ in range(count):
            turns.append(round(elapsed_s * NS))
            elapsed_s += low if low == high else self._processing_random.uniform(low, high)
        return turns, elapsed_s

    def _sign_on(self, request: HttpRequest, arrival_ns: int) -> _Outcome:
        self._sso_requests += 1
        if self._sso_requests in self._config.sso_unavailable_on:
            page = Reply(503, IIS_503_PAGE, content_type="text/html; charset=us-ascii")
            return _Outcome(page, fault="iis_503")
        reply, subject = self._sso.respond(request, arrival_ns)
        return _Outcome(reply, subject)

    def _public_schedule(self, request: HttpRequest, arrival_ns: int) -> _Outcome:
        return _Outcome(self._schedule.respond(request, self._clock.server_ns(arrival_ns)))

    def _check_token(self, request: HttpRequest, arrival_ns: int) -> _Outcome:
        subject = self._subject(request, arrival_ns)
        if subject is None:
            return _Outcome(_message(401, "Unauthorized"))
        return _Outcome(_json_reply(200, ["ogrenci"]), subject)

    def _check_opening(self, request: HttpRequest, arrival_ns: int) -> _Outcome:
        subject = self._subject(request, arrival_ns)
        if subject is None:
            return _Outcome(_message(401, "Unauthorized"))
        is_open = self._registrar.is_open(self._clock.server_ns(arrival_ns))
        result = {"kayitZamanKontrolResult": {"ogrenciSinifaKayitOlabilir": is_open}}
        return _Outcome(_json_reply(200, result), subject)

    def _admin(self, request: HttpRequest) -> Reply:
        if request.method != "GET":
            return replace(_message(405, "Method Not Allowed"), headers=(("Allow", "GET"),))
        if request.path == RECORDS_PATH:
            return _json_reply(200, self.records())
        if request.path == STATE_PATH:
            return _json_reply(200, self.state())
        return _message(404, "Not Found")

    def records(self) -> list[RequestRecord]:
        """Every recorded request, in arrival order."""
        with self._lock:
            records = list(self._records)
        return sorted(records, key=lambda r: (r.arrival_ns, r.seq))

    def cookies_issued(self) -> list[str]:
        """The single sign-on's session cookie values so far (they must never leak)."""
        with self._lock:
            return self._sso.cookies_issued()

    def state(self) -> SimState:
        """Seats and registrations as they stand."""
        with self._lock:
            return self._registrar.snapshot()
