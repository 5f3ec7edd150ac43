"""The NTP adapter on real UDP sockets against the simulator's servers (loopback only)."""

from __future__ import annotations

import socket

import pytest

from obsd.adapters import ntp_client
from obsd.adapters.clock import SystemClock
from obsd.adapters.kernel_clock import read_kernel_clock
from obsd.adapters.ntp_client import exchange_all
from obsd.core.time_sources import Sample, TimeSources, read_exchange
from obsd.core.timing import MS, NS
from obsd.sim import NtpBehaviour, SimConfig, Simulator


async def test_one_query_to_each_server_at_once_in_the_servers_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A shorter wait for the silent one: what is shown is that it is paid once.
    monkeypatch.setattr(ntp_client, "NTP_TIMEOUT_S", 0.3)
    behaviours = [NtpBehaviour(), NtpBehaviour(kind="silent"), NtpBehaviour(lie_s=5.0)]
    clock = SystemClock()
    with Simulator(SimConfig(clock_offset_s=1.5, ntp=behaviours)).serve_in_thread() as sim:
        began = clock.mono_ns()
        honest, silent, liar = await exchange_all(sim.ntp_servers, clock)
        took = clock.mono_ns() - began
        queries = sim.ntp_queries()
    assert [e.source for e in (honest, silent, liar)] == sim.ntp_servers
    assert sorted(q.server for q in queries) == [0, 1, 2], "one query each"
    # All at once: the silent one's timeout is paid once, not after the others.
    assert took < (0.3 + 1.0) * NS
    assert silent.data is None and silent.error is not None and "UDP port" in silent.error
    sample, lie = read_exchange(honest), read_exchange(liar)
    assert isinstance(sample, Sample) and isinstance(lie, Sample)
    # The true offset lies within each sample's own error bound, however loaded the machine.
    assert abs(sample.wall_offset_ns - 1_500 * MS) <= sample.error_ns
    assert abs(lie.wall_offset_ns - 6_500 * MS) <= lie.error_ns
    assert honest.cookie != liar.cookie


class _SlowToClose(SystemClock):
    """A clock that reads every wall time after a socket's close as if the close took 50 ms."""

    def __init__(self) -> None:
        self.lag_ns = 0

    def wall_ns(self) -> int:
        return super().wall_ns() + self.lag_ns


async def test_the_wall_clock_is_read_beside_the_receive_stamp_not_after_the_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A close lets go of the GIL, and a busy loop may hold it for milliseconds before the
    # thread gets it back: none of that may show in the offset operators are shown.
    clock = _SlowToClose()
    close = socket.socket.close

    def slow_close(sock: socket.socket) -> None:
        close(sock)
        clock.lag_ns += 50 * MS

    monkeypatch.setattr(socket.socket, "close", slow_close)
    with Simulator(SimConfig(clock_offset_s=1.5)).serve_in_thread() as sim:
        (exchange,) = await exchange_all(sim.ntp_servers[:1], clock)
    sample = read_exchange(exchange)
    assert isinstance(sample, Sample)
    assert abs(sample.wall_offset_ns - 1_500 * MS) <= sample.error_ns


async def test_an_unresolvable_name_is_no_answer_with_the_reason() -> None:
    (exchange,) = await exchange_all(["no-such-host.invalid:123"], SystemClock())
    assert exchange.data is None and exchange.error is not None
    assert "no-such-host.invalid" in exchange.error
    sources = TimeSources()
    sources.record(exchange)
    assert sources.reading("no-such-host.invalid:123", 0).verdict == "no_answer"


def test_the_kernel_view_reads_without_privilege_or_names_why_not() -> None:
    kernel = read_kernel_clock()
    if kernel.problem is None:
        assert isinstance(kernel.synchronised, bool)
        assert kernel.max_error_us is not None and kernel.max_error_us >= 0
    else:
        assert kernel.problem.startswith("adjtimex") and not kernel.synchronised
