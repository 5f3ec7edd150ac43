"""The OBS client's requests as OBS receives them (httpx.MockTransport: no network)."""

from __future__ import annotations

import httpx
import pytest

from obsd.adapters.clock import SystemClock
from obsd.adapters.obs_client import ObsClient, ObsTimeout


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


async def test_a_post_whose_answer_is_lost_still_says_when_it_was_sent() -> None:
    clock = SystemClock()

    def lose(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    async with ObsClient(
        "https://obs.test", "a.b.c", 30.0, clock, httpx.MockTransport(lose)
    ) as obs:
        post = obs.prepare(["21234"], [])
        before = clock.mono_ns()
        with pytest.raises(ObsTimeout) as lost:
            await obs.send(post)
        after = clock.mono_ns()
    assert lost.value.sent_mono_ns is not None and before <= lost.value.sent_mono_ns <= after
