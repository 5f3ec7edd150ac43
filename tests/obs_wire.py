"""The OBS client's wire with a scripted OBS behind it: an httpx transport (MockTransport).

In process, OBS is a function of the request (tests/daemon/scripted.py, the adapter tests):
each request is one round trip through the transport when it is written, its answer kept for
`response`. The bytes are the real wire's (WireConnection.build), so what the script sees is
what OBS would.
"""

from __future__ import annotations

from collections.abc import Callable

import h11
import httpx

from obsd.adapters.clock import Clock
from obsd.adapters.http_wire import Outgoing, Reply, WireConnection, WireError, WireTimeout


class TransportWire:
    """A Wire (obsd.adapters.obs_client) whose other end is an httpx transport."""

    def __init__(
        self,
        base_url: str,
        transport: httpx.AsyncBaseTransport,
        clock: Clock,
        on_seal: Callable[[Outgoing], None] = lambda outgoing: None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._on_seal = on_seal
        self._bytes = WireConnection(base_url, clock, connect_timeout_s=1, read_timeout_s=1)
        self._transport = transport
        self._clock = clock
        self._answer: Reply | WireError | None = None

    def build(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> Outgoing:
        return self._bytes.build(method, path, headers, body)

    async def seal(self, outgoing: Outgoing) -> None:
        outgoing.sealed = outgoing.plain
        self._on_seal(outgoing)

    async def send(self, outgoing: Outgoing) -> int:
        began = self._clock.mono_ns()
        head, *rest = outgoing.events
        assert isinstance(head, h11.Request)
        body = b"".join(e.data for e in rest if isinstance(e, h11.Data))
        request = httpx.Request(
            head.method.decode(),
            self._base_url + head.target.decode(),
            headers=[(k.decode(), v.decode()) for k, v in head.headers],
            content=body,
        )
        try:
            response = await self._transport.handle_async_request(request)
            content = await response.aread()
        except httpx.TimeoutException as exc:
            self._answer = WireTimeout(repr(exc))
        except httpx.HTTPError as exc:
            self._answer = WireError(repr(exc))
        else:
            headers = {k.lower(): v for k, v in response.headers.items()}
            self._answer = Reply(response.status_code, headers, content, self._clock.mono_ns())
        return began

    async def response(self) -> Reply:
        answer, self._answer = self._answer, None
        if answer is None:
            raise WireError("no request was sent")
        if isinstance(answer, WireError):
            raise answer
        return answer

    async def aclose(self) -> None:
        self._answer = None
