"""The accept loop under descriptor exhaustion, in process with a fake clock: every retry is
counted, the journal gets a handful of lines, and the next connection is served."""

from __future__ import annotations

import errno
import logging
from typing import Any, cast

import anyio
import anyio.abc
import pytest

from obsd.daemon.connection import ACCEPT_RETRY_S, accept_connections
from tests.fake_clock import NS, FakeClock


class ExhaustedListener:
    """accept() fails with EMFILE `failures` times, then hands out one stream, then waits."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.stream = object()

    async def accept(self) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise anyio.BrokenResourceError from OSError(errno.EMFILE, "Too many open files")
        if self.calls == self.failures + 1:
            return self.stream
        await anyio.sleep_forever()


async def test_an_hour_out_of_descriptors_is_five_lines_then_the_next_client_is_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    # An hour of retries, one every ACCEPT_RETRY_S.
    listener = ExhaustedListener(failures=int(3600 / ACCEPT_RETRY_S))
    served: list[object] = []
    caplog.set_level(logging.INFO, logger="obsd.connection")
    started = clock.mono_ns()

    async with anyio.create_task_group() as tasks:

        async def serve(stream: anyio.abc.SocketStream) -> None:
            served.append(stream)
            tasks.cancel_scope.cancel()

        await accept_connections(cast(anyio.abc.SocketListener, listener), serve, tasks, clock)

    assert served == [listener.stream]
    # Every retry really happened, then the one that succeeded, then it waited for the next.
    assert listener.calls == listener.failures + 2
    assert (clock.mono_ns() - started) == listener.failures * int(ACCEPT_RETRY_S * NS)
    assert [r.getMessage() for r in caplog.records] == [
        "accepting a connection failed: Too many open files",
        "accepting a connection failed 10 times in 1 s (said again at 100); "
        "last: Too many open files",
        "accepting a connection failed 100 times in 10 s (said again at 1000); "
        "last: Too many open files",
        "accepting a connection failed 1000 times in 1 min 40 s (said again at 10000); "
        "last: Too many open files",
        "accepting a connection failed 10000 times in 16 min 40 s (said again at 100000); "
        "last: Too many open files",
        "accepting a connection works again after 36000 failures in 1 h 00 min",
    ]
