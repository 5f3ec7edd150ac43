"""The send path on loopback: its delay measured, and the warm-up before a shot."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from obsd.adapters import send_path
from obsd.adapters.obs_client import Answer
from obsd.adapters.send_path import WARM_UP_SETUP_NS, measure_send_delay, warm_send_path
from obsd.core.timing import MS, NS

ECRN = ["21234", "21235"]


def listeners() -> int:
    return sum(thread.name == "obsd-send-path" for thread in threading.enumerate())


def counting_sends(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The HTTP status of each loopback send, as it happens."""
    statuses: list[int] = []
    send = send_path._Loopback.send

    async def counted(self: send_path._Loopback) -> Answer:
        answer = await send(self)
        statuses.append(answer.http_status)
        return answer

    monkeypatch.setattr(send_path._Loopback, "send", counted)
    return statuses


async def test_the_send_delay_is_measured_on_samples_after_the_connection_opens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    statuses = counting_sends(monkeypatch)
    fastest = await measure_send_delay(ECRN, [], samples=5)
    # The first send opens the connection and is not a sample.
    assert statuses == [200] * 6 and fastest > 0
    assert listeners() == 0, "the listener thread is gone with the measurement"


async def test_a_warm_up_is_one_request_to_a_listener_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    statuses = counting_sends(monkeypatch)
    async with warm_send_path(ECRN, [], time.monotonic_ns() + NS) as warm_up:
        assert statuses == [200], "the connection is opened ahead"
        await warm_up()
        assert statuses == [200, 200]
        # Served by this event loop: no thread wakes beside the shot to take the GIL.
        assert listeners() == 0


async def test_a_shot_too_close_for_the_set_up_goes_unwarmed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    statuses = counting_sends(monkeypatch)
    async with warm_send_path(ECRN, [], time.monotonic_ns() + WARM_UP_SETUP_NS // 2) as warm_up:
        await warm_up()
    assert statuses == []


async def test_a_listener_that_cannot_be_made_costs_only_the_warming(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def no_listener(**kwargs: object) -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(anyio, "create_tcp_listener", no_listener)
    ran = False
    async with warm_send_path(ECRN, [], time.monotonic_ns() + NS) as warm_up:
        await warm_up()
        ran = True
    assert ran


async def test_a_warm_up_that_stalls_is_given_up_at_its_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deadline = time.monotonic_ns() + WARM_UP_SETUP_NS + 50 * MS
    stalled_at: list[int] = []

    async def stalled(self: send_path._Loopback) -> Answer:
        stalled_at.append(time.monotonic_ns())
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async with warm_send_path(ECRN, [], deadline) as warm_up:
        monkeypatch.setattr(send_path._Loopback, "send", stalled)
        with anyio.fail_after(5):
            await warm_up()
        assert stalled_at and time.monotonic_ns() >= deadline


async def test_a_listener_that_fails_never_reaches_the_shot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(stream: object) -> None:
        raise RuntimeError("a bug in the listener")

    monkeypatch.setattr(send_path, "_answer_requests", broken)
    async with warm_send_path(ECRN, [], time.monotonic_ns() + NS) as warm_up:
        await warm_up()
        await anyio.sleep(0)  # a checkpoint: a cancellation from the listener would land here
        shot = "sent"
    assert shot == "sent"
