"""The OBS client's requests as OBS receives them (httpx.MockTransport: no network)."""

from __future__ import annotations

import httpx

from obsd.adapters.clock import SystemClock
from obsd.adapters.obs_client import ObsClient


async def probe_headers(token: str) -> httpx.Headers:
    seen: list[httpx.Headers] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(405, headers={"Date": "Tue, 01 Dec 2026 09:00:00 GMT"})

    transport = httpx.MockTransport(answer)
    async with ObsClient("https://obs.test", token, 30.0, SystemClock(), transport) as obs:
        probe = await obs.probe()
    assert probe.date_epoch_s == 1_796_115_600
    return seen[0]


async def test_probes_carry_the_token() -> None:
    assert (await probe_headers("abc.def.ghi"))["authorization"] == "Bearer abc.def.ghi"


async def test_without_a_token_a_calibration_probe_has_no_authorization_header() -> None:
    """An empty "Bearer " is refused by the HTTP client, so calibrate would measure nothing."""
    assert "authorization" not in await probe_headers("")
