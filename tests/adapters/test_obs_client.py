"""The OBS client's requests as OBS receives them, on a loopback server: the token (or none),
the Date of a probe, and a POST whose answer is lost still saying when it left."""

from __future__ import annotations

import h11
import pytest

from obsd.adapters.clock import SystemClock
from obsd.adapters.obs_client import ObsClient, ObsTimeout
from tests.adapters.loopback_http import serving


def dated(request: h11.Request) -> tuple[int, list[tuple[str, str]], bytes]:
    return 405, [("date", "Tue, 01 Dec 2026 09:00:00 GMT")], b""


async def probe_headers(token: str) -> bytes:
    async with serving(dated) as server, ObsClient(server.url, token, 30.0, SystemClock()) as obs:
        probe = await obs.probe()
    assert probe.date_epoch_s == 1_796_115_600 and probe.http_status == 405
    ((_, head, _),) = server.requests
    return head.lower()


async def test_probes_carry_the_token() -> None:
    assert b"\r\nauthorization: bearer abc.def.ghi\r\n" in await probe_headers("abc.def.ghi")


async def test_without_a_token_a_calibration_probe_has_no_authorization_header() -> None:
    """An empty "Bearer " would be refused by OBS, so calibrate would measure nothing."""
    assert b"authorization" not in await probe_headers("")


async def test_a_fresh_token_goes_in_the_posts_prepared_after() -> None:
    async with serving() as server, ObsClient(server.url, "old.to.ken", 30.0, SystemClock()) as obs:
        before = obs.prepare(["21234"], [])
        obs.use_token("new.to.ken")
        await obs.send(obs.prepare(["21234"], []))
        await obs.send(before)
    (_, fresh, _), (_, old, _) = server.requests
    assert b"Bearer new.to.ken" in fresh and b"Bearer old.to.ken" in old


async def test_a_post_whose_answer_is_lost_still_says_when_it_was_sent() -> None:
    clock = SystemClock()
    async with serving(silent=True) as server, ObsClient(server.url, "a.b.c", 0.3, clock) as obs:
        post = obs.prepare(["21234"], [])
        await obs.seal(post)
        before = clock.mono_ns()
        with pytest.raises(ObsTimeout) as lost:
            await obs.send(post)
        after = clock.mono_ns()
    assert lost.value.sent_mono_ns is not None and before <= lost.value.sent_mono_ns <= after
