"""One shot client for bench_shot.py, in a process of its own: fires POSTs at planned instants.

`--path wire` is obsd's send path (ObsClient: the POST prepared, sealed, one write), and
`--path wire-warm` the same with obsd's warm-up of the send path just before the instant
(adapters/send_path.py, at core/timing.WARM_UP_LEADS_NS, as the run driver fires); `--path
httpx` is the path it replaced, and `httpx-warm` that path warmed the same way, as obsd fired
before (an httpx AsyncClient on one kept-alive HTTP/1.1 connection,
`client.send` of a request built ahead), kept here as the baseline. `tls-socket` is the other
way to make an HTTPS shot one write (issue 15): the same h11 bytes, encrypted at the instant
by `ssl.SSLSocket.sendall` on a blocking socket, where obsd seals the record in advance. All
wait the same way (SystemClock.arrive_at, the collector paused) and report, as JSON lines on
stdout, the wall time at which send was called: the simulator's log says when each POST's
first byte arrived. Over HTTPS the simulator's CA comes in through SSL_CERT_FILE, for all.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Final, Protocol
from urllib.parse import urlsplit

import anyio
import h11
import httpx

from obsd.adapters.clock import SystemClock, collector_paused
from obsd.adapters.http_wire import Outgoing, WireConnection
from obsd.adapters.obs_client import USER_AGENT, ObsClient, PreparedPost
from obsd.adapters.send_path import WarmUp, _served_listener, warm_send_path
from obsd.core.obs_answer import REGISTRATION_PATH, registration_body
from obsd.core.timing import SPIN_BASE_NS, WARM_UP_LEADS_NS

# Warm samples whose least call-to-wire delay the shots subtract, as obsd's calibration does.
DELAY_SAMPLES: Final = 15
# Each shot: a keep-alive HEAD, then the POST this long after it (obsd's last probe is at
# least 2 s before; shorter here keeps 400 shots within minutes), sealed on the way.
PROBE_BEFORE_S: Final = 0.6
SEAL_BEFORE_S: Final = 0.3
READ_TIMEOUT_S: Final = 10.0


class Shooter(Protocol):
    async def probe(self) -> None: ...
    async def ready(self) -> object: ...
    async def fire(self, post: object) -> int: ...
    def warmer(self, deadline_mono_ns: int) -> AbstractAsyncContextManager[WarmUp]: ...


class WirePath:
    """obsd's path: ObsClient's prepared, sealed POST."""

    def __init__(self, client: ObsClient) -> None:
        self._client = client

    async def probe(self) -> None:
        await self._client.probe()

    async def ready(self) -> object:
        post = self._client.prepare(["21234"], [])
        await self._client.seal(post)
        return post

    async def fire(self, post: object) -> int:
        assert isinstance(post, PreparedPost)
        return (await self._client.send(post)).sent_mono_ns

    def warmer(self, deadline_mono_ns: int) -> AbstractAsyncContextManager[WarmUp]:
        return warm_send_path(["21234"], [], deadline_mono_ns)


class HttpxPath:
    """The path obsd replaced: httpx's send of a request built ahead."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def probe(self) -> None:
        await self._client.head(REGISTRATION_PATH)

    async def ready(self) -> object:
        return self._client.build_request(
            "POST",
            REGISTRATION_PATH,
            content=registration_body(["21234"], []),
            headers={"Content-Type": "application/json"},
        )

    async def fire(self, post: object) -> int:
        assert isinstance(post, httpx.Request)
        sent = time.monotonic_ns()
        await self._client.send(post)
        return sent

    @contextlib.asynccontextmanager
    async def warmer(self, deadline_mono_ns: int) -> AsyncIterator[WarmUp]:
        """The warm-up obsd made before, on this path: httpx POSTs to a loopback listener."""
        async with (
            _served_listener() as url,
            httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(0.1)) as client,
        ):
            request = await HttpxPath(client).ready()
            await client.send(request)  # opens the connection, not counted

            async def warm_up() -> None:
                with contextlib.suppress(httpx.HTTPError):
                    await client.send(await HttpxPath(client).ready())

            yield warm_up


class TlsSocketPath:
    """The alternative HTTPS shot: h11's bytes, encrypted and written by one SSLSocket call."""

    def __init__(self, url: str, token: str) -> None:
        # Only for building requests: the same bytes ObsClient sends.
        self._builder = WireConnection(url, SystemClock(), connect_timeout_s=5, read_timeout_s=5)
        self._headers = [
            ("User-Agent", USER_AGENT),
            ("Accept", "application/json"),
            ("Authorization", f"Bearer {token}"),
        ]
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        raw = socket.create_connection((parts.hostname, parts.port), timeout=READ_TIMEOUT_S)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        context = ssl.create_default_context()
        self._sock = context.wrap_socket(raw, server_hostname=parts.hostname)
        self._http = h11.Connection(our_role=h11.CLIENT)

    def close(self) -> None:
        self._sock.close()

    def _exchange(self, outgoing: Outgoing) -> int:
        for event in outgoing.events:
            self._http.send(event)
        sent = time.monotonic_ns()
        self._sock.sendall(outgoing.plain)
        while not isinstance(event := self._http.next_event(), h11.EndOfMessage):
            if event is h11.NEED_DATA:
                self._http.receive_data(self._sock.recv(65536))
        self._http.start_next_cycle()
        return sent

    async def probe(self) -> None:
        self._exchange(self._builder.build("HEAD", REGISTRATION_PATH, self._headers, b""))

    async def ready(self) -> object:
        headers = [*self._headers, ("Content-Type", "application/json")]
        body = registration_body(["21234"], [])
        return self._builder.build("POST", REGISTRATION_PATH, headers, body)

    async def fire(self, post: object) -> int:
        assert isinstance(post, Outgoing)
        return self._exchange(post)

    def warmer(self, deadline_mono_ns: int) -> AbstractAsyncContextManager[WarmUp]:
        raise NotImplementedError("the TLS socket path is measured unwarmed")


async def shots(shooter: Shooter, count: int, wall_minus_mono: int, warm: bool) -> None:
    clock = SystemClock()
    for _ in range(DELAY_SAMPLES):
        sent = await shooter.fire(await shooter.ready())
        print(json.dumps({"kind": "sample", "call_wall_ns": sent + wall_minus_mono}), flush=True)
        await anyio.sleep(0.002)
    for number in range(count):
        target = clock.mono_ns() + int((PROBE_BEFORE_S + 0.1) * 1e9)
        await shooter.probe()
        await clock.sleep_until(target - int(SEAL_BEFORE_S * 1e9))
        post = await shooter.ready()
        with collector_paused():
            if warm:
                # As RunDriver._fire: the warm-up goes to a loopback listener of our own.
                async with shooter.warmer(target - SPIN_BASE_NS) as warm_up:
                    for lead_ns in WARM_UP_LEADS_NS:
                        await clock.sleep_until(target - lead_ns)
                        await warm_up()
                    await clock.arrive_at(target)
                    sent = await shooter.fire(post)
            else:
                await clock.arrive_at(target)
                sent = await shooter.fire(post)
        line = {
            "kind": "shot",
            "number": number,
            "target_wall_ns": target + wall_minus_mono,
            "call_wall_ns": sent + wall_minus_mono,
        }
        print(json.dumps(line), flush=True)


async def main(path: str, url: str, token: str, count: int) -> None:
    wall_minus_mono = time.time_ns() - time.monotonic_ns()
    warm = path.endswith("-warm")
    if path == "tls-socket":
        shooter = TlsSocketPath(url, token)
        try:
            await shots(shooter, count, wall_minus_mono, warm)
        finally:
            shooter.close()
        return
    if path.startswith("wire"):
        async with ObsClient(url, token, READ_TIMEOUT_S, SystemClock()) as client:
            await shots(WirePath(client), count, wall_minus_mono, warm)
        return
    async with httpx.AsyncClient(
        base_url=url,
        http1=True,
        http2=False,
        timeout=httpx.Timeout(READ_TIMEOUT_S),
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=None),
        headers={
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Authorization": f"Bearer {token}",
        },
        verify=ssl.create_default_context(),
    ) as client:
        await shots(HttpxPath(client), count, wall_minus_mono, warm)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--path",
        choices=("wire", "wire-warm", "httpx", "httpx-warm", "tls-socket"),
        required=True,
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--shots", type=int, required=True)
    args = parser.parse_args()
    anyio.run(main, args.path, args.url, sys.stdin.readline().strip(), args.shots)
