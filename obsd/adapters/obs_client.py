"""The HTTP client to OBS: one kept-alive HTTP/1.1 connection, HEAD probes, the prebuilt POST.

The registration endpoint's traffic, the keep-alive HEADs and the POSTs, goes over one
connection of our own (adapters/http_wire.py): a POST is bytes built when it is prepared,
sealed for the connection (`seal`) before the instant, and written in one piece at it.
HTTP/1.1 rather than HTTP/2: an HTTP/2 request reaches the wire ~1 ms after the call
(timing-notes.md). The token check and the public pages keep httpx. Both stay inside this
module and http_wire: their errors leave as ObsTimeout or ObsUnreachable, and a prepared POST
is opaque.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Final, Protocol

import httpx
import msgspec

from obsd.adapters.clock import Clock
from obsd.adapters.http_wire import Outgoing, Reply, WireConnection, WireError, WireTimeout
from obsd.core.config import Config
from obsd.core.obs_answer import REGISTRATION_PATH, TOKEN_CHECK_PATH, registration_body

# Opening a connection (TLS included) must never be what the first shot waits for.
CONNECT_TIMEOUT_S: Final = 10.0
USER_AGENT: Final = "obsd (course registration; one request per attempt)"
# A public schedule page that takes longer than this is as good as down: the watch backs off.
PUBLIC_PAGE_TIMEOUT_S: Final = 20.0


class ObsError(Exception):
    """OBS could not be reached or did not answer; the message says how."""

    # When a POST that failed this way was handed to the connection (monotonic), if it was.
    sent_mono_ns: int | None = None


class ObsTimeout(ObsError):
    """No answer within the read timeout: a POST may still have been processed."""


class ObsUnreachable(ObsError):
    """The connection could not be made, or broke before the answer came."""


@contextlib.contextmanager
def _mapped_errors(sent_mono_ns: int | None = None) -> Iterator[None]:
    """httpx's and the wire's exceptions as ours, mapped here and nowhere else."""
    try:
        yield
    except (httpx.TimeoutException, WireTimeout) as exc:
        error: ObsError = ObsTimeout(str(exc) if isinstance(exc, WireError) else repr(exc))
        error.sent_mono_ns = sent_mono_ns
        raise error from exc
    except (httpx.HTTPError, WireError) as exc:
        error = ObsUnreachable(str(exc) if isinstance(exc, WireError) else repr(exc))
        error.sent_mono_ns = sent_mono_ns
        raise error from exc


class Wire(Protocol):
    """The connection the registration endpoint's requests go over (http_wire.WireConnection;
    tests put a scripted OBS behind one)."""

    def build(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> Outgoing:
        """A request as the bytes it will be."""
        ...

    async def seal(self, outgoing: Outgoing) -> None:
        """Make the request ready to go as one write on the connection."""
        ...

    async def send(self, outgoing: Outgoing) -> int:
        """Write the request; when the call began (monotonic)."""
        ...

    async def response(self) -> Reply:
        """The answer to the request just written."""
        ...

    async def aclose(self) -> None:
        """Close the connection."""
        ...


class Probe(msgspec.Struct, frozen=True):
    """One HEAD round trip: monotonic send and receive instants and the Date header."""

    sent_mono_ns: int
    received_mono_ns: int
    http_status: int
    date_epoch_s: float | None


class Answer(msgspec.Struct, frozen=True):
    """What came back for a POST (or GET): status and body, with monotonic instants."""

    http_status: int
    body: bytes
    sent_mono_ns: int
    received_mono_ns: int


class PreparedPost:
    """A registration POST built ahead of time, so that firing is only sending."""

    __slots__ = ("_outgoing",)

    def __init__(self, outgoing: Outgoing) -> None:
        self._outgoing = outgoing


class ObsClient:
    """Talks to one OBS base URL with one token; use as an async context manager."""

    def __init__(
        self,
        base_url: str,
        token: str,
        read_timeout_s: float,
        clock: Clock,
        transport: httpx.AsyncBaseTransport | None = None,
        wire: Wire | None = None,
    ) -> None:
        self._clock = clock
        self._token = token
        # The CAs httpx trusts (certifi, or $SSL_CERT_FILE): the token check and the shot
        # must agree on whether OBS's certificate is good.
        self._wire: Wire = wire or WireConnection(
            base_url,
            clock,
            connect_timeout_s=CONNECT_TIMEOUT_S,
            read_timeout_s=read_timeout_s,
            tls_context=httpx.create_ssl_context() if base_url.startswith("https:") else None,
        )
        # The token check (a GET of its own, never near a shot) keeps httpx.
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(read_timeout_s, connect=CONNECT_TIMEOUT_S),
            headers=dict(self._headers()),
            transport=transport,
        )

    @classmethod
    def for_config(
        cls,
        config: Config,
        token: str,
        clock: Clock,
        transport: httpx.AsyncBaseTransport | None = None,
        wire: Wire | None = None,
    ) -> ObsClient:
        """A client for the OBS a configuration names, with its read timeout."""
        return cls(config.obs_base_url, token, config.read_timeout, clock, transport, wire)

    async def __aenter__(self) -> ObsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._wire.aclose()
        finally:
            await self._client.aclose()

    def _headers(self) -> list[tuple[str, str]]:
        # No token (a calibration before one is configured): no Authorization header, rather
        # than an empty "Bearer ".
        token = [("Authorization", f"Bearer {self._token}")] if self._token else []
        return [("User-Agent", USER_AGENT), ("Accept", "application/json"), *token]

    async def probe(self) -> Probe:
        """HEAD the registration URL: OBS answers 405 and it does not count as a POST."""
        with _mapped_errors():
            outgoing = self._wire.build("HEAD", REGISTRATION_PATH, self._headers(), b"")
            sent = await self._wire.send(outgoing)
            reply = await self._wire.response()
        return Probe(
            sent_mono_ns=sent,
            received_mono_ns=reply.received_mono_ns,
            http_status=reply.status,
            date_epoch_s=_date_header(reply.headers.get("date")),
        )

    async def check_token(self) -> Answer:
        """GET the cheap token check; 200 means the token is accepted."""
        sent = self._clock.mono_ns()
        with _mapped_errors():
            response = await self._client.get(TOKEN_CHECK_PATH)
        return Answer(
            http_status=response.status_code,
            body=response.content,
            sent_mono_ns=sent,
            received_mono_ns=self._clock.mono_ns(),
        )

    def prepare(self, ecrn: list[str], scrn: list[str]) -> PreparedPost:
        """Build the registration POST ahead of time."""
        headers = [*self._headers(), ("Content-Type", "application/json")]
        body = registration_body(ecrn, scrn)
        with _mapped_errors():
            return PreparedPost(self._wire.build("POST", REGISTRATION_PATH, headers, body))

    async def seal(self, post: PreparedPost) -> None:
        """Make the POST one write of ready bytes (connection open, TLS record sealed).

        Nothing else may go to OBS between this and `send`. A failure here is no failure:
        `send` opens and seals again, and says what went wrong if it goes wrong again.
        """
        with contextlib.suppress(WireError):
            await self._wire.seal(post._outgoing)

    def use_token(self, token: str) -> None:
        """Send `token` from now on (a fresh one from a login), in requests prepared after."""
        self._token = token
        self._client.headers["Authorization"] = f"Bearer {token}"

    async def send(self, post: PreparedPost) -> Answer:
        """Send a prepared POST; the send instant is taken right before the write."""
        sent = self._clock.mono_ns()
        # A lost answer still says when the POST left.
        with _mapped_errors(sent):
            sent = await self._wire.send(post._outgoing)
        with _mapped_errors(sent):
            reply = await self._wire.response()
        return Answer(
            http_status=reply.status,
            body=reply.body,
            sent_mono_ns=sent,
            received_mono_ns=reply.received_mono_ns,
        )


async def fetch_public(
    base_url: str, target: str, clock: Clock, transport: httpx.AsyncBaseTransport | None = None
) -> Answer:
    """GET one public page of OBS (the course schedule): no token, a connection of its own.

    The headers are those of the public page's own script, which the site expects.
    """
    headers = {
        "User-Agent": USER_AGENT,
        "X-Requested-With": "XMLHttpRequest",
        "Referer": f"{base_url}/public/DersProgram",
    }
    timeout = httpx.Timeout(PUBLIC_PAGE_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=timeout, transport=transport
    ) as client:
        sent = clock.mono_ns()
        with _mapped_errors():
            response = await client.get(target)
        return Answer(
            http_status=response.status_code,
            body=response.content,
            sent_mono_ns=sent,
            received_mono_ns=clock.mono_ns(),
        )


def _date_header(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
