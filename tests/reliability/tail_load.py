"""Many tail clients (steady, reconnecting, stalled) and a status hammer, with their checks.

Used by tests/reliability/test_load_isolation.py (correctness) and by
tests/bench/bench_isolation.py (the same load, in a worker process, while the fire instant is
measured). Every client starts at `after_seq` 0 and must see each seq exactly once, in order,
across all its reconnects; a stalled client never reads until it is released.
"""

from __future__ import annotations

import random
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import msgspec

from obsd.core.phases import Phase
from obsd.sim import Simulator
from tests.conftest import DaemonProcess
from tests.harness import NS, Registration, sim_config
from tests.reliability.rawwire import Wire

# The mix of issue 5 point 5: 100 clients, some stalled, some reconnecting with after_seq.
STEADY_CLIENTS: Final = 50
RECONNECTING_CLIENTS: Final = 30
STALLED_CLIENTS: Final = 20
# A stalled client's receive buffer: as small as the kernel allows, so the daemon's writes
# to it block almost at once.
STALLED_RCVBUF: Final = 4096
# A reconnecting client hangs up after this many events, or this long, whichever is first.
RECONNECT_AFTER_EVENTS: Final = (1, 6)
RECONNECT_AFTER_S: Final = (0.05, 0.5)
# Some hang-ups happen right after the tail request, before its response is read.
ABRUPT_FRACTION: Final = 0.2
RECEIVE_BYTES: Final = 256 * 1024
SELECT_TIMEOUT_S: Final = 0.02
MAX_PROBLEMS: Final = 30
PHASES: Final = frozenset(p.value for p in Phase)


class Role(StrEnum):
    """How a tail client behaves."""

    STEADY = "steady"
    RECONNECTING = "reconnecting"
    STALLED = "stalled"


@dataclass
class TailClient:
    """One follow-tail from seq 0 and what it has received."""

    role: Role
    number: int
    sock: socket.socket | None = None
    buffer: bytearray = field(default_factory=bytearray)
    answered: bool = False
    last_seq: int = 0
    events: int = 0
    duplicates: int = 0
    gaps: int = 0
    connects: int = 0
    since_connect: int = 0
    hang_up_after: int = 0
    hang_up_at: float = 0.0


@dataclass
class TailLoad:
    """Runs every tail client in one selector thread until stopped."""

    path: Path
    log_id: str
    seed: int = 0
    clients: list[TailClient] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    reconnects: int = 0
    abrupt: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.selector = selectors.DefaultSelector()
        self.released = False
        roles = (
            [Role.STEADY] * STEADY_CLIENTS
            + [Role.RECONNECTING] * RECONNECTING_CLIENTS
            + [Role.STALLED] * STALLED_CLIENTS
        )
        self.clients = [TailClient(role, number) for number, role in enumerate(roles)]

    def problem(self, text: str) -> None:
        """Record a failure (bounded)."""
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)

    def connect_all(self) -> None:
        """Connect every client and send its tail request (stalled ones then stop reading)."""
        for client in self.clients:
            self._connect(client)

    def _tail_request(self, client: TailClient) -> bytes:
        request = {
            "id": client.connects,
            "op": "tail",
            "after_seq": client.last_seq,
            "follow": True,
            "log_id": self.log_id,
        }
        return msgspec.json.encode(request) + b"\n"

    def _connect(self, client: TailClient) -> None:
        stalled = client.role is Role.STALLED
        wire = Wire(self.path, rcvbuf=STALLED_RCVBUF if stalled else None)
        if wire.greeting["data"]["log_id"] != self.log_id:
            self.problem(f"client {client.number}: greeting of another log")
        wire.send(self._tail_request(client))
        client.sock, client.buffer = wire.sock, bytearray()
        client.answered, client.since_connect = False, 0
        client.connects += 1
        client.hang_up_after = self.rng.randint(*RECONNECT_AFTER_EVENTS)
        client.hang_up_at = time.monotonic() + self.rng.uniform(*RECONNECT_AFTER_S)
        client.sock.setblocking(False)
        if not stalled or self.released:
            self.selector.register(client.sock, selectors.EVENT_READ, client)

    def _hang_up(self, client: TailClient) -> None:
        """Close, sometimes tail-and-vanish once more, then resume after the last seq seen."""
        assert client.sock is not None
        self.selector.unregister(client.sock)
        client.sock.close()
        client.sock = None
        self.reconnects += 1
        if self.rng.random() < ABRUPT_FRACTION:
            # Gone before reading anything: the resume point stays the last complete line.
            with Wire(self.path) as vanishing:
                vanishing.send(self._tail_request(client))
            self.abrupt += 1
        self._connect(client)

    def run(self) -> None:
        """The selector loop (in its own thread); problems are recorded, not raised."""
        try:
            while not self.stop.is_set():
                if self.release.is_set() and not self.released:
                    self.released = True
                    for client in self.clients:
                        if client.role is Role.STALLED and client.sock is not None:
                            self.selector.register(client.sock, selectors.EVENT_READ, client)
                for key, _ in self.selector.select(SELECT_TIMEOUT_S):
                    self._read(key.data)
                now = time.monotonic()
                for client in self.clients:
                    if (
                        client.role is Role.RECONNECTING
                        and client.sock is not None
                        and client.answered
                        and now >= client.hang_up_at
                    ):
                        self._hang_up(client)
        except Exception as exc:
            self.problem(f"tail load stopped: {exc!r}")
        finally:
            for client in self.clients:
                if client.sock is not None:
                    client.sock.close()
            self.selector.close()

    def _read(self, client: TailClient) -> None:
        assert client.sock is not None
        try:
            data = client.sock.recv(RECEIVE_BYTES)
        except BlockingIOError:
            return
        if not data:
            self.problem(f"client {client.number} ({client.role}): the daemon hung up")
            self.selector.unregister(client.sock)
            client.sock.close()
            client.sock = None
            return
        client.buffer += data
        *lines, rest = client.buffer.split(b"\n")
        client.buffer = bytearray(rest)
        for line in lines:
            self._line(client, line)
        if (
            client.role is Role.RECONNECTING
            and client.answered
            and client.since_connect >= client.hang_up_after
        ):
            self._hang_up(client)

    def _line(self, client: TailClient, line: bytes | bytearray) -> None:
        message = msgspec.json.decode(line)
        if "success" in message:
            if not message["success"] or client.answered:
                self.problem(f"client {client.number}: tail answered {message!r:.200}")
            client.answered = True
            return
        seq = message.get("seq")
        if seq is None:
            if message.get("type") != "caught_up" or message["after_seq"] != client.last_seq:
                self.problem(
                    f"client {client.number}: bad marker {message!r:.200} "
                    f"after seq {client.last_seq}"
                )
            return
        if seq <= client.last_seq:
            client.duplicates += 1
        elif seq > client.last_seq + 1:
            client.gaps += 1
        else:
            client.events += 1
            client.since_connect += 1
        client.last_seq = max(client.last_seq, seq)

    def behind(self, head: int) -> list[TailClient]:
        """Clients that have not yet seen every seq up to `head`."""
        return [c for c in self.clients if c.last_seq < head]

    def summary(self) -> dict[str, Any]:
        """Counts for reports."""
        return {
            "clients": len(self.clients),
            "by_role": {role.value: sum(c.role is role for c in self.clients) for role in Role},
            "events_delivered": sum(c.events for c in self.clients),
            "reconnects": self.reconnects,
            "abrupt_hang_ups": self.abrupt,
            "gaps": sum(c.gaps for c in self.clients),
            "duplicates": sum(c.duplicates for c in self.clients),
            "problems": list(self.problems),
        }


@dataclass
class StatusHammer:
    """A client sending `status` back to back, checking each answer."""

    path: Path
    stop: threading.Event = field(default_factory=threading.Event)
    requests: int = 0
    slowest_s: float = 0.0
    run_ids: set[str] = field(default_factory=set)
    phases: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def run(self) -> None:
        """Loop until stopped; problems are recorded, not raised."""
        try:
            with Wire(self.path) as wire:
                head = 0
                while not self.stop.is_set() and len(self.problems) < MAX_PROBLEMS:
                    begin = time.monotonic()
                    response = wire.request("status", self.requests)
                    self.slowest_s = max(self.slowest_s, time.monotonic() - begin)
                    self.requests += 1
                    head = self._check(response, head)
        except Exception as exc:
            self.problems.append(f"status hammer stopped: {exc!r}")

    def _check(self, response: dict[str, Any], head: int) -> int:
        data = response.get("data") or {}
        log = data.get("log") or {}
        if not (
            response["success"]
            and data.get("phase") in PHASES
            and log.get("head_seq", -1) >= head
            and log.get("durable_seq", head + 1) <= log.get("head_seq", -1)
        ):
            self.problems.append(f"status: {response!r:.300}")
            return head
        self.phases.add(data["phase"])
        if data["active_run"] is not None:
            self.run_ids.add(data["active_run"]["run_id"])
        return int(log["head_seq"])

    def summary(self) -> dict[str, Any]:
        """Counts for reports."""
        return {
            "requests": self.requests,
            "slowest_ms": round(self.slowest_s * 1000, 2),
            "phases": sorted(self.phases),
            "problems": list(self.problems),
        }


@contextmanager
def logged_registration(
    directory: Path, opening_in_s: float, **sim_overrides: Any
) -> Iterator[Registration]:
    """tests.harness.registration with the daemon's stderr in a file.

    Under this load the daemon may log a traceback per client that hangs up mid-reply; a
    stderr pipe nobody reads would fill up and block it.
    """
    config = sim_config(opening_in_s, **sim_overrides)
    assert config.opening_at is not None
    with Simulator(config).serve_in_thread() as sim:
        daemon = DaemonProcess(directory / "obsd.sock", directory / "state").start()
        try:
            yield Registration(daemon, sim, int(config.opening_at * NS))
        finally:
            status = daemon.stop()
        assert status == 0, daemon.stderr()[-3000:]
