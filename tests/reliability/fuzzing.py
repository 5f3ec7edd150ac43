"""The raw-socket protocol fuzzer: hostile lines by class, an oracle for each answer, workers.

The oracle is the daemon's own pure decoder (obsd.core.protocol.decode_request) plus what each
op answers on a fresh daemon with no runs; every line the fuzzer sends has an expectation, and
every answer is checked against it. Ops that would reach the network or start a run (`start`,
`calibrate`, `test_token`) are never sent; `configure` is sent mostly with invalid values,
and a valid one is accepted (it only changes settings, and nothing starts a run).
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import msgspec

from obsd.core.framing import MAX_LINE_BYTES
from obsd.core.protocol import (
    AnyRequest,
    Calibrate,
    Cancel,
    Configure,
    DeleteRun,
    ErrorCode,
    GetRun,
    Ping,
    ProtocolError,
    RequestId,
    Start,
    Tail,
    TestLogin,
    TestToken,
    WatchSeat,
    decode_request,
)
from tests.reliability.rawwire import Wire, WireError

SUCCESS: Final = "success"
ERROR_CODES: Final = frozenset(code.value for code in ErrorCode)
# Ops whose success would reach beyond loopback or start a run: never sent by the fuzzer.
# They reach the network (OBS, NTP, İTÜ's login): a fuzzed daemon stays on loopback.
NEVER_SENT: Final = (Start, WatchSeat, Calibrate, TestToken, TestLogin)
# A fraction of messages is replaced by an abrupt disconnect of one of the kinds below.
DISCONNECT_RATE: Final = 0.02
# Problems kept per run: enough to diagnose, bounded so that a broken daemon cannot flood.
MAX_PROBLEMS: Final = 30
# Deepest nesting that still fits in one line: "[" * d + "]" * d is 2d bytes.
MAX_ARRAY_DEPTH: Final = MAX_LINE_BYTES // 2
# The shallowest nesting the fuzzer sends as "deep" (msgspec decodes it normally).
SHALLOWEST_DEEP: Final = 500
# msgspec gives up with RecursionError at the interpreter's recursion limit (1000) minus the
# caller's stack depth: ~999 levels from a shallow script, 982 inside the daemon. Lines nested
# deeper than this may go either way, depending on who decodes them.
NEAR_RECURSION_LIMIT: Final = 900
# Attempts to draw a line that may be sent (a few ops are never sent); far above what is needed.
MAX_DRAWS: Final = 1000


class Kind(StrEnum):
    """The classes of message the fuzzer sends."""

    MALFORMED = "malformed"
    TRUNCATED = "truncated"
    OVERSIZED = "oversized"
    LIMIT_EDGE = "limit_edge"
    WRONG_TYPE = "wrong_type"
    DEEP = "deep"
    RANDOM_BYTES = "random_bytes"
    VALID_LOOKING = "valid_looking"
    BLANK = "blank"


# Relative frequencies: the cheap hostile classes dominate; oversized and deep lines are
# 64 KiB each, so they are rarer but still hundreds in a 10,000-message run.
WEIGHTS: Final = {
    Kind.MALFORMED: 18,
    Kind.TRUNCATED: 12,
    Kind.OVERSIZED: 4,
    Kind.LIMIT_EDGE: 1,
    Kind.WRONG_TYPE: 16,
    Kind.DEEP: 6,
    Kind.RANDOM_BYTES: 14,
    Kind.VALID_LOOKING: 25,
    Kind.BLANK: 4,
}


class Disconnect(StrEnum):
    """The ways the fuzzer drops a connection."""

    PARTIAL_LINE = "partial_line"
    UNREAD_RESPONSE = "unread_response"
    FOLLOW_THEN_CLOSE = "follow_then_close"
    OVERSIZED_PARTIAL = "oversized_partial"
    HALF_CLOSE = "half_close"


@dataclass(frozen=True, slots=True)
class Context:
    """What the oracle knows of the daemon: its lineage and a floor and ceiling of its head."""

    log_id: str
    head_floor: int
    # Every fuzzed line appends at most one event, so the head never passes this.
    head_ceiling: int


@dataclass(frozen=True, slots=True)
class Expect:
    """What the daemon must answer to one line."""

    respond: bool
    request_id: RequestId | None = None
    # SUCCESS and/or error codes; empty means "any error code" (the oracle itself raised).
    outcomes: frozenset[str] = frozenset()
    # Set when the line is nested near msgspec's recursion limit, which depends on the
    # caller's stack: the daemon may then refuse it as BAD_JSON (id null) where this process
    # decoded it.
    depth_limited: str | None = None
    pong: bool = False
    follow: bool = False


def outcome_of(response: dict[str, Any]) -> str:
    """SUCCESS or the error code of a response envelope."""
    if response.get("success") is True:
        return SUCCESS
    error = response.get("error")
    return str(error.get("code")) if isinstance(error, dict) else "?"


def same_id(got: object, want: object) -> bool:
    """Ids compare by type as well as value (True is not 1)."""
    return type(got) is type(want) and got == want


def expect_request(request: AnyRequest, ctx: Context, following: bool) -> Expect | None:
    """The answer a decodable request gets on a daemon with no runs; None: never send it."""
    if isinstance(request, NEVER_SENT):
        return None
    outcomes: set[str] = {SUCCESS}
    if isinstance(request, GetRun | DeleteRun):
        outcomes = {ErrorCode.RUN_NOT_FOUND}
    elif isinstance(request, Cancel):
        outcomes = {ErrorCode.NO_ACTIVE_RUN if request.run_id is None else ErrorCode.RUN_NOT_FOUND}
    elif isinstance(request, Configure):
        outcomes = {SUCCESS, ErrorCode.VALIDATION_ERROR}
    elif isinstance(request, Tail):
        if following:
            outcomes = {ErrorCode.ALREADY_TAILING}
        elif request.log_id is not None and request.log_id != ctx.log_id:
            outcomes = {ErrorCode.LOG_ID_MISMATCH}
        elif request.after_seq is None or request.after_seq <= ctx.head_floor:
            outcomes = {SUCCESS}
        elif request.after_seq > ctx.head_ceiling:
            outcomes = {ErrorCode.VALIDATION_ERROR}
        else:
            outcomes = {SUCCESS, ErrorCode.VALIDATION_ERROR}
        return Expect(True, request.id, frozenset(outcomes), follow=request.follow)
    return Expect(True, request.id, frozenset(outcomes), pong=isinstance(request, Ping))


def nesting_depth(line: bytes) -> int:
    """How deeply arrays and objects nest in `line` (strings skipped; any bytes will do)."""
    if line.count(b"[") + line.count(b"{") < NEAR_RECURSION_LIMIT:
        return 0  # Cheap bound: too few brackets to come near the limit.
    depth = deepest = 0
    in_string = escaped = False
    for byte in line:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def expect_line(line: bytes, ctx: Context, following: bool) -> Expect | None:
    """What the daemon must answer to `line` (sent with a newline); None: never send it."""
    if len(line) > MAX_LINE_BYTES:
        return Expect(True, None, frozenset({ErrorCode.LINE_TOO_LONG}))
    if not line.strip():
        return Expect(False)
    try:
        request = decode_request(line)
    except ProtocolError as exc:
        expect = Expect(True, exc.request_id, frozenset({exc.code}))
    else:
        expect = expect_request(request, ctx, following)
    if expect is not None and nesting_depth(line) >= NEAR_RECURSION_LIMIT:
        return replace(expect, depth_limited="nesting near the recursion limit")
    return expect


def check_response(response: dict[str, Any], expect: Expect) -> str | None:
    """A description of what is wrong with `response`, or None."""
    if set(response) != {"id", "success", "data", "error"}:
        return f"bad envelope keys {sorted(response)}"
    if (
        expect.depth_limited
        and outcome_of(response) == ErrorCode.BAD_JSON
        and response["id"] is None
    ):
        return None
    if not same_id(response["id"], expect.request_id):
        return f"id {response['id']!r}, expected {expect.request_id!r}"
    outcome = outcome_of(response)
    if response["success"] is True:
        if response["error"] is not None:
            return "success with an error"
        if SUCCESS not in expect.outcomes:
            return f"success, expected {sorted(expect.outcomes) or 'an error'}"
        if expect.pong and response["data"] != {"pong": True}:
            return f"ping answered {response['data']!r}"
        return None
    if response["success"] is not False or response["data"] is not None:
        return "a failure must have success false and data null"
    error = response["error"]
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return f"bad error object {error!r}"
    if outcome not in ERROR_CODES:
        return f"untyped error code {outcome!r}"
    if expect.outcomes and outcome not in expect.outcomes:
        return f"{outcome}, expected {sorted(expect.outcomes)}"
    if outcome == ErrorCode.INTERNAL_ERROR:
        return "INTERNAL_ERROR on a line the decoder handles"
    return None


# -- generating lines -------------------------------------------------------------------

UNKNOWN_OPS: Final = ("fly", "", "PING", "ping ", "status\u0000", "start_run", "éclair", "op")
BAD_PATCHES: Final[tuple[dict[str, Any], ...]] = (
    {},
    {"max_attempts": 0},
    {"max_attempts": 301},
    {"retry_interval": 0.5},
    {"retry_interval": 11},
    {"safety_buffer": 1.0},
    {"safety_buffer": -0.1},
    {"ecrn": ["1234"]},
    {"ecrn": ["abcde"]},
    {"ecrn": ["123456"]},
    {"scrn": ["12345", "12345"]},
    {"ecrn": [f"{10000 + n}" for n in range(13)]},
    {"target": "25:61:00"},
    {"target": "yesterday"},
    {"target": "2020-01-01T00:00:00"},
    {"token": "not-a-jwt"},
    {"token": "a.b"},
    {"token": "x y.z.w"},
    {"token": ""},
    {"obs_base_url": "ftp://obs"},
    {"obs_base_url": "https://u@h"},
    {"obs_base_url": "https://h/path"},
    {"ntp_servers": []},
    {"ntp_servers": ["::1"]},
    {"ntp_servers": ["h:0"]},
    {"ntp_servers": ["h"] * 9},
    {"budget_posts": 0},
    {"budget_window": 1},
    {"read_timeout": 1},
    {"aim_early_fraction": 2},
    {"backup": {"1": "2"}},
    {"nonsense": 1},
    {"ecrn": "12345"},
)
MALFORMED_BYTES: Final = b"{}[]\":,\\'tfn0-.eE +\x00\xff\x7f\r\t"
WRONG_VALUES: Final[tuple[Any, ...]] = (
    True,
    False,
    1.5,
    None,
    [],
    {},
    "x",
    -1,
    0,
    2**70,
    "0",
    [1, "a"],
    {"k": "v"},
    "",
)
RANDOM_FIELDS: Final = (
    "after_seq",
    "follow",
    "log_id",
    "limit",
    "types",
    "config",
    "page",
    "status",
    "sort",
    "run_id",
    "please",
    "ID",
    "op2",
)


class Generator:
    """Hostile and valid-looking lines of every Kind, from one seeded random source."""

    def __init__(self, rng: random.Random, ctx: Context) -> None:
        self.rng = rng
        self.ctx = ctx

    def request_id(self) -> RequestId:
        """A valid id: integers of any size and sign, strings of any content."""
        rng = self.rng
        return rng.choice(
            (
                rng.randrange(-(2**63), 2**63),
                rng.randrange(0, 1000),
                2**64 + rng.randrange(9),
                "",
                f"r-{rng.randrange(10**6)}",
                "id with spaces and é",
                '\u2028\t\\"',
            )
        )

    def valid_request(self) -> dict[str, Any]:
        """A well-formed request of an op the fuzzer may send."""
        rng, ctx = self.rng, self.ctx
        fields: dict[str, Any] = {"id": self.request_id()}
        op = rng.choice(
            (
                "ping",
                "status",
                "config",
                "events",
                "health",
                "schema",
                "runs",
                "run",
                "tail",
                "cancel",
                "delete_run",
                "configure",
                "unknown",
            )
        )
        if op == "unknown":
            op = rng.choice(UNKNOWN_OPS)
        fields["op"] = op
        if op == "events":
            fields |= rng.choice(
                (
                    {},
                    {"after_seq": rng.randrange(ctx.head_floor + 2)},
                    {"limit": rng.randint(1, 1000)},
                    {"types": rng.choice(([], ["config_changed"], ["nope"]))},
                    {"after_seq": 10**12, "limit": 1},
                )
            )
        elif op == "tail":
            fields |= rng.choice(
                (
                    {},
                    {"after_seq": 0},
                    {"after_seq": ctx.head_floor},
                    {"after_seq": 10**12},
                    {"log_id": ctx.log_id},
                    {"log_id": "not-this-log"},
                )
            )
            if rng.random() < 0.3:
                fields["follow"] = True
        elif op == "runs":
            fields |= rng.choice(
                (
                    {},
                    {"page": rng.randint(1, 5)},
                    {"limit": 100},
                    {"status": "done"},
                    {"sort": "created_asc"},
                )
            )
        elif op in ("run", "delete_run"):
            fields["run_id"] = rng.choice(("nope", "", "00000000-0000-4000-8000-000000000000"))
        elif op == "configure":
            fields["config"] = dict(rng.choice(BAD_PATCHES))
        return fields

    def encode(self, fields: dict[str, Any]) -> bytes:
        """JSON of `fields`, sometimes with keys shuffled or whitespace around."""
        items = list(fields.items())
        if self.rng.random() < 0.3:
            self.rng.shuffle(items)
        line = msgspec.json.encode(dict(items))
        if self.rng.random() < 0.1:
            line = b" \t" + line + b" \r"
        return line

    def line(self, kind: Kind) -> bytes:
        """One line (without its newline) of `kind`."""
        line = getattr(self, f"_{kind.value}")()
        assert b"\n" not in line
        return bytes(line)

    def _valid_looking(self) -> bytes:
        rng = self.rng
        fields = self.valid_request()
        roll = rng.random()
        if roll < 0.15:
            fields[rng.choice(RANDOM_FIELDS)] = rng.choice(WRONG_VALUES)
        elif roll < 0.25:
            # Duplicate key: the decoder keeps the last.
            return self.encode(fields)[:-1] + b',"op":"ping"}'
        return self.encode(fields)

    def _wrong_type(self) -> bytes:
        rng = self.rng
        fields = self.valid_request()
        key = rng.choice([*fields, *RANDOM_FIELDS[:6]])
        fields[key] = rng.choice(WRONG_VALUES)
        if "config" in fields and isinstance(fields["config"], dict) and rng.random() < 0.5:
            fields["config"] = {
                rng.choice(
                    ("ecrn", "target", "max_attempts", "token", "ntp_servers", "backup")
                ): rng.choice(WRONG_VALUES)
            }
        return self.encode(fields)

    def _malformed(self) -> bytes:
        rng = self.rng
        line = bytearray(self.encode(self.valid_request()))
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(line) + 1)
            action = rng.randrange(6)
            if action == 0 and line:
                del line[min(position, len(line) - 1)]
            elif action == 1:
                line[position:position] = bytes([rng.choice(MALFORMED_BYTES)])
            elif action == 2 and line:
                line[min(position, len(line) - 1)] = rng.choice(MALFORMED_BYTES)
            elif action == 3:
                line += rng.choice((b"}", b",", b" garbage", b'{"id":2}', b"]"))
            elif action == 4:
                line[:0] = rng.choice((b"{", b"[", b"x", b"//c ", b"\xef\xbb\xbf"))
            else:
                line = bytearray(line.replace(b'"', b"'", 2))
        return bytes(line).replace(b"\n", b"")

    def _truncated(self) -> bytes:
        line = self.encode(self.valid_request())
        return line[: self.rng.randrange(1, len(line))]

    def _oversized(self) -> bytes:
        rng = self.rng
        size = rng.randint(MAX_LINE_BYTES + 1, 4 * MAX_LINE_BYTES)
        variant = rng.randrange(4)
        if variant == 0:
            head = b'{"id":1,"op":"ping","pad":"'
            return head + b"x" * (size - len(head) - 2) + b'"}'
        if variant == 1:
            return rng.randbytes(size).replace(b"\n", b"!")
        if variant == 2:
            return b" " * size
        return b"[" * size

    def _limit_edge(self) -> bytes:
        # Exactly at the limit (served) or one byte over it (refused).
        request = b'{"id":"edge","op":"ping"}'
        return request + b" " * (MAX_LINE_BYTES - len(request) + self.rng.randint(0, 1))

    def _deep(self) -> bytes:
        rng = self.rng
        depth = rng.choice(
            (
                SHALLOWEST_DEEP,
                999,
                1000,
                rng.randint(SHALLOWEST_DEEP, 5000),
                rng.randint(5000, MAX_ARRAY_DEPTH - 100),
                30_000,
            )
        )
        variant = rng.randrange(5)
        if variant == 0:
            return b"[" * depth + b"]" * depth
        if variant == 1:
            depth = min(depth, (MAX_LINE_BYTES - 1) // 6)
            return b'{"a":' * depth + b"1" + b"}" * depth
        if variant == 2:
            depth = min(depth, MAX_ARRAY_DEPTH - 30)
            return b'{"id":7,"op":"events","types":' + b"[" * depth + b"]" * depth + b"}"
        if variant == 3:
            return b"[" * depth
        depth = min(depth, (MAX_LINE_BYTES - 1) // 7)
        return b'[{"a":' * depth + b"0" + b"}]" * depth

    def _random_bytes(self) -> bytes:
        return self.rng.randbytes(self.rng.randint(1, 4096)).replace(b"\n", b"")

    def _blank(self) -> bytes:
        return self.rng.choice((b"", b" ", b"\t", b"\r", b"  \t \r", b"\x0b\x0c"))


# -- running it -------------------------------------------------------------------------


@dataclass
class Tally:
    """Counts and problems shared by the workers (guarded by `lock`)."""

    sent: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    disconnects: Counter[str] = field(default_factory=Counter)
    depth_limited: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    bytes_sent: int = 0
    problems: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def problem(self, text: str) -> None:
        """Record a failure (the first MAX_PROBLEMS of them)."""
        with self.lock:
            if len(self.problems) < MAX_PROBLEMS:
                self.problems.append(text)

    @property
    def messages(self) -> int:
        """Lines sent, every class together."""
        return sum(self.sent.values())


class FuzzWorker:
    """One fuzzing connection (reconnecting after each disconnect) sending `count` lines."""

    def __init__(self, path: Path, ctx: Context, seed: int, count: int, tally: Tally) -> None:
        self.path = path
        self.ctx = ctx
        self.rng = random.Random(seed)
        self.generator = Generator(self.rng, ctx)
        self.count = count
        self.tally = tally
        self.kinds = list(WEIGHTS)
        self.weights = list(WEIGHTS.values())

    def connect(self) -> Wire:
        """A new connection whose greeting is checked."""
        wire = Wire(self.path)
        greeting = wire.greeting
        data = greeting.get("data") or {}
        if not (
            greeting.get("success") is True
            and data.get("protocol") == 1
            and data.get("log_id") == self.ctx.log_id
            and data.get("access") == "rw"
        ):
            self.tally.problem(f"bad greeting {greeting!r:.300}")
        with self.tally.lock:
            self.tally.connections += 1
        return wire

    def run(self) -> None:
        """Send every line; record problems instead of raising."""
        try:
            self._run()
        except Exception as exc:
            self.tally.problem(f"worker stopped: {exc!r}")

    def draw(self, following: bool) -> tuple[Kind, bytes, Expect]:
        """A line that may be sent, with its class and expectation."""
        for _ in range(MAX_DRAWS):
            kind = self.rng.choices(self.kinds, self.weights)[0]
            line = self.generator.line(kind)
            expect = expect_line(line, self.ctx, following)
            if expect is not None:
                return kind, line, expect
        raise AssertionError("no sendable line drawn")

    def _run(self) -> None:
        wire = self.connect()
        following = False
        sent = 0
        try:
            while sent < self.count:
                if self.rng.random() < DISCONNECT_RATE:
                    self.disconnect(wire)
                    wire = self.connect()
                    following = False
                    continue
                kind, line, expect = self.draw(following)
                wire.send(line + b"\n")
                sent += 1
                outcome = "no answer"
                if expect.respond:
                    response = wire.read_response()
                    outcome = outcome_of(response)
                    problem = check_response(response, expect)
                    if problem:
                        self.tally.problem(f"{kind}: {problem}; line {line[:120]!r}")
                    following = following or (expect.follow and outcome == SUCCESS)
                with self.tally.lock:
                    self.tally.sent[kind] += 1
                    self.tally.outcomes[kind, outcome] += 1
                    self.tally.bytes_sent += len(line) + 1
                    if expect.depth_limited:
                        self.tally.depth_limited[expect.depth_limited] += 1
            # The connection still serves a plain request after everything it was sent.
            if wire.request("ping", "last")["data"] != {"pong": True}:
                self.tally.problem("the final ping was not answered with pong")
        finally:
            wire.close()

    def disconnect(self, wire: Wire) -> None:
        """Drop `wire` in one of the Disconnect ways."""
        mode = self.rng.choice(list(Disconnect))
        request = msgspec.json.encode({"id": 1, "op": "events", "limit": 1000}) + b"\n"
        if mode is Disconnect.PARTIAL_LINE:
            wire.send(request[: self.rng.randrange(1, len(request) - 1)])
        elif mode is Disconnect.UNREAD_RESPONSE:
            wire.send(self.rng.choice((request, b'{"id":2,"op":"schema"}\n')))
        elif mode is Disconnect.FOLLOW_THEN_CLOSE:
            wire.send(b'{"id":3,"op":"tail","after_seq":0,"follow":true}\n')
        elif mode is Disconnect.OVERSIZED_PARTIAL:
            wire.send(b"[" * self.rng.randint(MAX_LINE_BYTES // 2, 2 * MAX_LINE_BYTES))
        else:
            wire.send(b'{"id":"bye","op":"ping"}\n')
            wire.sock.shutdown(socket.SHUT_WR)
            # The line sent before the half-close is answered; then the daemon hangs up.
            try:
                response = wire.read_response()
                if response != {
                    "id": "bye",
                    "success": True,
                    "data": {"pong": True},
                    "error": None,
                }:
                    self.tally.problem(f"half-close: {response!r:.200}")
                if not wire.at_eof():
                    self.tally.problem("half-close: the daemon kept the connection open")
            except WireError as exc:
                self.tally.problem(f"half-close: {exc}")
        wire.close()
        with self.tally.lock:
            self.tally.disconnects[mode] += 1


@dataclass
class Witness:
    """The well-behaved client: ping, status and events in a loop, every answer checked."""

    path: Path
    daemon_pid: int
    rng: random.Random
    stop: threading.Event = field(default_factory=threading.Event)
    rounds: int = 0
    answers: int = 0
    slowest_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    def run(self) -> None:
        """Loop until `stop` is set; record problems instead of raising."""
        try:
            with Wire(self.path) as wire:
                head = 0
                while not self.stop.is_set() and len(self.problems) < MAX_PROBLEMS:
                    head = self._round(wire, head)
                    self.rounds += 1
        except Exception as exc:
            self.problems.append(f"witness stopped: {exc!r}")

    def _timed(self, wire: Wire, op: str, request_id: int, **fields: Any) -> dict[str, Any]:
        begin = time.monotonic()
        response = wire.request(op, request_id, **fields)
        self.slowest_s = max(self.slowest_s, time.monotonic() - begin)
        self.answers += 1
        return response

    def _round(self, wire: Wire, head: int) -> int:
        base = self.rounds * 3
        pong = self._timed(wire, "ping", base)
        if pong != {"id": base, "success": True, "data": {"pong": True}, "error": None}:
            self.problems.append(f"ping: {pong!r:.200}")
        status = self._timed(wire, "status", base + 1)
        data = status["data"] or {}
        log = data.get("log") or {}
        if not (
            status["success"]
            and data["daemon"]["pid"] == self.daemon_pid
            and data["phase"] == "idle"
            and data["active_run"] is None
            and data["access"] == "rw"
            and log["head_seq"] >= head
            and log["durable_seq"] <= log["head_seq"]
            and log["damage"] is None
            and log["failure"] is None
        ):
            self.problems.append(f"status: {status!r:.400}")
            return head
        head = log["head_seq"]
        after, limit = self.rng.randint(0, head), self.rng.randint(1, 50)
        page = self._timed(wire, "events", base + 2, after_seq=after, limit=limit)
        if not page["success"]:
            self.problems.append(f"events: {page!r:.300}")
            return head
        items = page["data"]["items"]
        seqs = [item["seq"] for item in items]
        expected_next = seqs[-1] if seqs else after
        if (
            seqs != list(range(after + 1, after + 1 + len(seqs)))
            or len(seqs) > limit
            or page["data"]["next_after_seq"] != expected_next
            or page["data"]["has_more"] != (expected_next < page["data"]["head_seq"])
            or (page["data"]["has_more"] and len(seqs) != limit)
        ):
            self.problems.append(f"events after {after} limit {limit}: {page!r:.400}")
        return head
