"""tail over a real socket: replay, caught_up, live; no gaps or duplicates, even when slow."""

import socket
from pathlib import Path

import anyio
import anyio.abc
import msgspec
import pytest

from obsd.core.events import DaemonStoppedPayload
from obsd.daemon.journal import Journal, Subscription
from obsd.daemon.tail import stream_tail
from tests.fake_clock import FakeClock


async def read_seqs(
    stream: anyio.abc.SocketStream, until_seq: int, pause_s: float = 0.0
) -> tuple[list[int], list[dict[str, object]]]:
    """Read tail lines until `until_seq` arrives; return seqs and the non-event lines."""
    buffer = b""
    seqs: list[int] = []
    markers: list[dict[str, object]] = []
    while not seqs or seqs[-1] < until_seq:
        buffer += await stream.receive(4096)
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            message = msgspec.json.decode(line)
            if "seq" in message:
                seqs.append(message["seq"])
            else:
                markers.append(message)
        if pause_s:
            await anyio.sleep(pause_s)
    return seqs, markers


async def read_until_caught_up(stream: anyio.abc.SocketStream) -> dict[str, object]:
    """Read until the caught_up marker, which must end what was received; return it."""
    buffer = b""
    while not buffer.endswith(b"\n"):
        buffer += await stream.receive(4096)
    message: dict[str, object] = msgspec.json.decode(buffer.splitlines()[-1])
    return message


async def socket_pair() -> tuple[anyio.abc.SocketStream, anyio.abc.SocketStream]:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return (
        await anyio.abc.SocketStream.from_socket(left),
        await anyio.abc.SocketStream.from_socket(right),
    )


async def test_replay_then_marker_then_live_with_appends_during_the_replay(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path, FakeClock(), segment_bytes=8192)
    for n in range(500):
        await journal.append(DaemonStoppedPayload(reason=f"before {n}"), durable=False)
    server, client = await socket_pair()

    async def append_meanwhile() -> None:
        for n in range(500):
            await journal.append(DaemonStoppedPayload(reason=f"during {n}"), durable=False)
            await anyio.sleep(0)

    async def tail() -> None:
        await stream_tail(journal, server.send, 0, follow=True, log_id=None)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tail)
        tasks.start_soon(append_meanwhile)
        seqs, markers = await read_seqs(client, until_seq=1001)
        tasks.cancel_scope.cancel()
    assert seqs == list(range(1, 1002)), "every event once, in order"
    assert markers == [{"type": "caught_up", "after_seq": markers[0]["after_seq"], "log_id": None}]
    journal.log.close()


async def test_a_slow_reader_falls_back_to_disk_and_still_misses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal.open(tmp_path, FakeClock(), subscriber_queue=8)
    server, client = await socket_pair()
    taken: list[Subscription] = []
    subscribe = journal.subscribe

    def recorded() -> Subscription:
        taken.append(subscription := subscribe())
        return subscription

    monkeypatch.setattr(journal, "subscribe", recorded)

    async def tail() -> None:
        await stream_tail(journal, server.send, 1, follow=True, log_id="L")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tail)
        # The marker says the tail has subscribed and replayed: what follows is live.
        assert await read_until_caught_up(client) == {
            "type": "caught_up",
            "after_seq": 1,
            "log_id": "L",
        }
        for n in range(3000):
            await journal.append(
                DaemonStoppedPayload(reason=f"burst {n:05d} " + "x" * 100), durable=False
            )
        # The appender never waited for the reader: all 3000 are written before it reads.
        assert journal.log.head_seq == 3001
        seqs, _ = await read_seqs(client, until_seq=3001, pause_s=0.001)
        tasks.cancel_scope.cancel()
    (subscription,) = taken
    assert subscription.overflows > 0, "the bounded queue must have overflowed"
    assert seqs == list(range(2, 3002))
    journal.log.close()


async def test_without_follow_the_tail_ends_at_the_marker(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path, FakeClock())
    for n in range(10):
        await journal.append(DaemonStoppedPayload(reason=str(n)), durable=False)
    server, client = await socket_pair()
    await stream_tail(journal, server.send, 5, follow=False, log_id="L")
    await server.aclose()
    data = b""
    while True:
        try:
            data += await client.receive()
        except anyio.EndOfStream:
            break
    lines = [msgspec.json.decode(line) for line in data.splitlines()]
    assert [line["seq"] for line in lines[:-1]] == list(range(6, 12))
    assert lines[-1] == {"type": "caught_up", "after_seq": 11, "log_id": "L"}
    journal.log.close()
