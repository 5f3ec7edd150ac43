"""Starting a simulator: HTTP(S) and NTP on loopback, in this event loop or a thread of its own."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import secrets
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Final

from obsd.core.timing import NS
from obsd.sim.app import RequestRecord, SimApp
from obsd.sim.clock import SimClock
from obsd.sim.config import SimConfig, validate_config
from obsd.sim.ntp import NtpArrival, start_ntp
from obsd.sim.rules import SimState
from obsd.sim.server import HttpServer, start_http
from obsd.sim.tls import make_test_certificate
from obsd.sim.tokens import DEFAULT_LIFETIME_S, issue_token

# Generous: binding two sockets and (with TLS) running openssl three times.
STARTUP_TIMEOUT_S: Final = 30.0
SHUTDOWN_TIMEOUT_S: Final = 10.0


class NotLoopback(ValueError):
    """The simulator was asked to listen beyond loopback."""


def require_loopback(host: str) -> None:
    """Refuse any listening address but a loopback IP literal."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise NotLoopback(
            f"{host!r} is not an IP address; the simulator listens on loopback "
            "only: use 127.0.0.1 or ::1"
        ) from None
    if not address.is_loopback:
        raise NotLoopback(
            f"{host} is not a loopback address; the simulator listens on "
            "loopback only: use 127.0.0.1 or ::1"
        )


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class RunningSimulator:
    """A serving simulator: where it listens, its tokens, its true clock and its record."""

    def __init__(
        self,
        config: SimConfig,
        app: SimApp,
        clock: SimClock,
        key: bytes,
        *,
        base_url: str,
        ntp_servers: list[str],
        ntp_log: list[NtpArrival],
        ca_cert: Path | None,
        http: HttpServer,
    ) -> None:
        self.config = config
        self.base_url = base_url
        # `host:port` or `[v6]:port`, the form obsd's `ntp_servers` accepts: one per
        # SimConfig.ntp entry, in order; the first is `ntp_server`.
        self.ntp_servers = ntp_servers
        self.ntp_server = ntp_servers[0]
        self._ntp_log = ntp_log
        # The CA to trust over TLS; None for plain HTTP.
        self.ca_cert = ca_cert
        self._app = app
        self._clock = clock
        self._key = key
        self._http = http

    def token(
        self, subject: str, lifetime_s: int = DEFAULT_LIFETIME_S, issued_at_s: float | None = None
    ) -> str:
        """A JWT this simulator accepts for `subject`, issued now (true time) by default."""
        issued = self._clock.true_ns() / NS if issued_at_s is None else issued_at_s
        return issue_token(subject, issued, lifetime_s, key=self._key)

    def true_time_ns(self) -> int:
        """The simulator's true time now, in epoch nanoseconds."""
        return self._clock.true_ns()

    def requests(self) -> list[RequestRecord]:
        """Every request so far except admin ones, in arrival order."""
        return self._app.records()

    def cookies_issued(self) -> list[str]:
        """The session cookie values its single sign-on handed out."""
        return self._app.cookies_issued()

    def ntp_queries(self) -> list[NtpArrival]:
        """Every NTP query so far, by responder (its index in SimConfig.ntp) and true time."""
        return list(self._ntp_log)

    def state(self) -> SimState:
        """Seats and registrations as they stand."""
        return self._app.state()

    def open_connections(self) -> int:
        """HTTP connections still open. Once a client's connection is gone, `requests()` holds
        everything it will ever hold of that client: a barrier for tests, instead of a guess."""
        return self._http.open_connections


class Simulator:
    """A simulated OBS, described by a SimConfig; each `serve` starts it afresh."""

    def __init__(
        self, config: SimConfig, *, wall_clock_ns: Callable[[], int] = time.time_ns
    ) -> None:
        self.config = validate_config(config)
        # Tests inject a clock they move by hand; true time is this plus the offset.
        self._wall_clock_ns = wall_clock_ns

    @asynccontextmanager
    async def serve(
        self, host: str = "127.0.0.1", port: int = 0, ntp_port: int = 0
    ) -> AsyncIterator[RunningSimulator]:
        """Serve HTTP(S) and NTP on loopback (port 0 = any free port) until the block ends.

        Built on asyncio Protocols: under anyio it needs the asyncio backend (the default).
        """
        require_loopback(host)
        config = self.config
        clock = SimClock(
            self._wall_clock_ns,
            config.clock_offset_s,
            config.server_skew_s,
            config.date_phase_s,
            config.true_step_at,
            config.true_step_s,
        )
        key = secrets.token_bytes(32)
        app = SimApp(config, clock, key)
        with tempfile.TemporaryDirectory(prefix="obsd-sim-") as workdir:
            certificate = (
                await asyncio.to_thread(make_test_certificate, Path(workdir))
                if config.tls
                else None
            )
            context = None if certificate is None else certificate.server_context()
            http = await start_http(app, clock, host, port, context)
            ntp_log: list[NtpArrival] = []
            responders: list[asyncio.DatagramTransport] = []
            try:
                servers = []
                for index, behaviour in enumerate(config.ntp):
                    # The first may have a fixed port; the others take any free one.
                    transport, bound = await start_ntp(
                        clock, host, behaviour, index, ntp_log, ntp_port if index == 0 else 0
                    )
                    responders.append(transport)
                    servers.append(_host_port(host, bound))
                scheme = "http" if certificate is None else "https"
                yield RunningSimulator(
                    config,
                    app,
                    clock,
                    key,
                    base_url=f"{scheme}://{_host_port(host, http.port)}",
                    ntp_servers=servers,
                    ntp_log=ntp_log,
                    ca_cert=None if certificate is None else certificate.ca,
                    http=http,
                )
            finally:
                for transport in responders:
                    transport.close()
                await http.close()

    @contextmanager
    def serve_in_thread(
        self, host: str = "127.0.0.1", port: int = 0, ntp_port: int = 0
    ) -> Iterator[RunningSimulator]:
        """`serve` on an event loop in a background thread, for synchronous callers."""
        started: concurrent.futures.Future[
            tuple[RunningSimulator, asyncio.AbstractEventLoop, asyncio.Event]
        ] = concurrent.futures.Future()
        failures: list[BaseException] = []

        async def run() -> None:
            stop = asyncio.Event()
            async with self.serve(host, port, ntp_port) as sim:
                started.set_result((sim, asyncio.get_running_loop(), stop))
                await stop.wait()

        def main() -> None:
            try:
                asyncio.run(run())
            except BaseException as exc:  # handed to the caller's thread, which re-raises
                if not started.done():
                    started.set_exception(exc)
                else:
                    failures.append(exc)

        thread = threading.Thread(target=main, name="obsd-sim", daemon=True)
        thread.start()
        sim, loop, stop = started.result(timeout=STARTUP_TIMEOUT_S)
        try:
            yield sim
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=SHUTDOWN_TIMEOUT_S)
            if failures:
                raise failures[0]
