"""The send path on loopback: its delay measured, and the warm-up before a shot."""

from __future__ import annotations

import socket
import threading
import time

import anyio
import pytest

from obsd.adapters import send_path
from obsd.adapters.send_path import WARM_UP_SETUP_NS, measure_send_delay, warm_send_path
from obsd.core.timing import MS, NS

ECRN = ["21234", "21235"]


def listeners() -> int:
    return sum(thread.name == "obsd-send-path" for thread in threading.enumerate())


def counting_sends(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each loopback send's measured delay, as it happens."""
    delays: list[int] = []
    send = send_path._Loopback.send

    async def counted(self: send_path._Loopback) -> int:
        delays.append(await send(self))
        return delays[-1]

    monkeypatch.setattr(send_path._Loopback, "send", counted)
    return delays


async def test_the_send_delay_is_the_fastest_of_its_samples(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    delays = counting_sends(monkeypatch)
    fastest = await measure_send_delay(ECRN, [], samples=5)
    # The first send opens the connection and is not a sample.
    assert len(delays) == 6 and fastest == min(delays[1:]) > 0
    assert listeners() == 0, "the listener is gone with the measurement"


async def test_a_warm_up_is_one_request_to_a_listener_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    delays = counting_sends(monkeypatch)
    async with warm_send_path(ECRN, [], time.monotonic_ns() + NS) as warm_up:
        assert len(delays) == 1, "the connection is opened ahead"
        await warm_up()
        assert len(delays) == 2
    assert listeners() == 0


async def test_a_shot_too_close_for_the_set_up_goes_unwarmed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    delays = counting_sends(monkeypatch)
    async with warm_send_path(ECRN, [], time.monotonic_ns() + WARM_UP_SETUP_NS // 2) as warm_up:
        await warm_up()
        assert listeners() == 0
    assert delays == []


async def test_a_listener_that_cannot_be_made_costs_only_the_warming(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_socket(*args: object, **kwargs: object) -> socket.socket:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(send_path.socket, "create_server", no_socket)
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

    async def stalled(self: send_path._Loopback) -> int:
        stalled_at.append(time.monotonic_ns())
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async with warm_send_path(ECRN, [], deadline) as warm_up:
        monkeypatch.setattr(send_path._Loopback, "send", stalled)
        with anyio.fail_after(5):
            await warm_up()
        assert stalled_at and time.monotonic_ns() >= deadline
