"""The HTTP client to OBS: one kept-alive HTTP/1.1 connection, HEAD probes, the prebuilt POST.

HTTP/1.1 rather than HTTP/2: httpx puts an HTTP/1.1 request on the wire ~0.3-0.45 ms after the
call against ~1 ms for HTTP/2 (timing-notes.md). httpx stays inside this module: its errors
leave as ObsTimeout or ObsUnreachable, and a prepared POST is opaque.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Final

import httpx
import msgspec

from obsd.adapters.clock import Clock
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
def _mapped_errors() -> Iterator[None]:
    """httpx's exceptions as ours, mapped here and nowhere else."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise ObsTimeout(repr(exc)) from exc
    except httpx.HTTPError as exc:
        raise ObsUnreachable(repr(exc)) from exc


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

    __slots__ = ("_request",)

    def __init__(self, request: httpx.Request) -> None:
        self._request = request


class ObsClient:
    """Talks to one OBS base URL with one token; use as an async context manager."""

    def __init__(
        self,
        base_url: str,
        token: str,
        read_timeout_s: float,
        clock: Clock,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._clock = clock
        self._client = httpx.AsyncClient(
            base_url=base_url,
            http1=True,
            http2=False,
            timeout=httpx.Timeout(read_timeout_s, connect=CONNECT_TIMEOUT_S),
            # One connection: the POST must go out on the one the probes kept warm.
            limits=httpx.Limits(
                max_connections=1, max_keepalive_connections=1, keepalive_expiry=None
            ),
            # No token (a calibration before one is configured): no Authorization header,
            # rather than an empty "Bearer " that the HTTP client refuses to send.
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"}
            | ({"Authorization": f"Bearer {token}"} if token else {}),
            transport=transport,
        )

    @classmethod
    def for_config(
        cls,
        config: Config,
        token: str,
        clock: Clock,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> ObsClient:
        """A client for the OBS a configuration names, with its read timeout."""
        return cls(config.obs_base_url, token, config.read_timeout, clock, transport)

    async def __aenter__(self) -> ObsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def probe(self) -> Probe:
        """HEAD the registration URL: OBS answers 405 and it does not count as a POST."""
        sent = self._clock.mono_ns()
        with _mapped_errors():
            response = await self._client.head(REGISTRATION_PATH)
        received = self._clock.mono_ns()
        return Probe(
            sent_mono_ns=sent,
            received_mono_ns=received,
            http_status=response.status_code,
            date_epoch_s=_date_header(response.headers.get("date")),
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
        return PreparedPost(
            self._client.build_request(
                "POST",
                REGISTRATION_PATH,
                content=registration_body(ecrn, scrn),
                headers={"Content-Type": "application/json"},
            )
        )

    def use_token(self, token: str) -> None:
        """Send `token` from now on (a fresh one from a login), in requests prepared after."""
        self._client.headers["Authorization"] = f"Bearer {token}"

    async def send(self, post: PreparedPost) -> Answer:
        """Send a prepared POST; the send instant is taken right before the call."""
        sent = self._clock.mono_ns()
        try:
            with _mapped_errors():
                response = await self._client.send(post._request)
        except ObsError as exc:
            exc.sent_mono_ns = sent  # A lost answer still says when the POST left.
            raise
        return Answer(
            http_status=response.status_code,
            body=response.content,
            sent_mono_ns=sent,
            received_mono_ns=self._clock.mono_ns(),
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
