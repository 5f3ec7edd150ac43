"""Load and isolation: 100 tail clients and a status hammer while a run fires.

Correctness only: every tail client sees every seq once, in order, across reconnects and
stalls; the run completes; the daemon's memory stays bounded. How far the load moves the fire
instant is a benchmark (tests/bench/bench_isolation.py), not an assertion here.
Both tests are slow (whole runs of the real daemon). The second adds a flood of events while
the stalled clients still do not read, so that their live queues overflow and they must go back
to the disk.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

from obsctl.client import Client
from obsd.adapters.eventlog import READ_CHUNK_BYTES
from tests.reliability.rawwire import RSS_GROWTH_LIMIT_KIB, vm_kib
from tests.reliability.tail_load import (
    RECONNECTING_CLIENTS,
    STALLED_CLIENTS,
    STEADY_CLIENTS,
    Role,
    StatusHammer,
    TailLoad,
    logged_registration,
)

# Events in the log before the clients connect: each client's first replay (~0.5 MB) is more
# than a stalled client's socket buffers hold, so its replay blocks part-way.
PREFILL_EVENTS: Final = 1_000
# Events appended after the run while the stalled clients still do not read: more than a
# follow-tail's live queue (4096), so theirs overflows and they must go back to the disk.
OVERFLOW_EVENTS: Final = 5_000
# Enough lead for 100 clients to connect and replay before the instant.
OPENING_IN_S: Final = 8.0
RUN_TIMEOUT_S: Final = 60.0
CATCH_UP_TIMEOUT_S: Final = 120.0
POLL_S: Final = 0.05
# A default within the limits (max_attempts is cycled while prefilling).
MAX_ATTEMPTS: Final = 60
TAIL_CLIENTS: Final = STEADY_CLIENTS + RECONNECTING_CLIENTS + STALLED_CLIENTS
# Each tail replaying from disk holds one read chunk of the log while its client is slow
# (100 x 256 KiB here); beyond that, the same generous headroom as the other suites.
LOAD_RSS_LIMIT_KIB: Final = RSS_GROWTH_LIMIT_KIB + TAIL_CLIENTS * READ_CHUNK_BYTES // 1024


def append_configures(sock: Path, count: int) -> None:
    """Append `count` config_changed events."""
    with Client(sock) as client:
        for n in range(count):
            assert client.request("configure", config={"max_attempts": n % 300 + 1})["success"]


@dataclass(frozen=True)
class LoadOutcome:
    """What one loaded run showed."""

    load: TailLoad
    hammer: StatusHammer
    run_id: str
    run: dict[str, Any]
    first_arrival_late_ns: int
    head: int
    rss_idle_kib: int
    rss_after_kib: int
    hwm_kib: int
    stderr: str


def loaded_run(directory: Path, overflow_events: int) -> LoadOutcome:
    """A run with 100 tail clients and a status hammer; then `overflow_events` more events."""
    with logged_registration(directory, OPENING_IN_S) as reg:
        sock, pid = reg.daemon.socket, reg.daemon.process.pid if reg.daemon.process else 0
        append_configures(sock, PREFILL_EVENTS)
        reg.plan(ecrn=["21234"], scrn=["20456"], max_attempts=MAX_ATTEMPTS)
        with Client(sock) as client:
            log_id = str(client.greeting["log_id"])
        rss_idle = vm_kib(pid)
        load, hammer = TailLoad(sock, log_id, seed=5), StatusHammer(sock)
        load.connect_all()
        tails = threading.Thread(target=load.run, name="tails")
        hammering = threading.Thread(target=hammer.run, name="status")
        tails.start()
        hammering.start()
        try:
            run_id = reg.start()
            reg.wait_for("done", timeout_s=RUN_TIMEOUT_S)
            run = reg.run_detail(run_id)
            posts = reg.posts()
            # The hammer's job ends with the run; without it the appends below go ~10x faster.
            hammer.stop.set()
            hammering.join(RUN_TIMEOUT_S)
            append_configures(sock, overflow_events)
            load.release.set()
            with Client(sock) as client:
                head = int(client.request("status")["data"]["log"]["head_seq"])
            deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
            while load.behind(head) and time.monotonic() < deadline and not load.problems:
                time.sleep(POLL_S)
        finally:
            load.stop.set()
            hammer.stop.set()
            for thread in (tails, hammering):
                thread.join(CATCH_UP_TIMEOUT_S)
        rss_after, peak = vm_kib(pid), vm_kib(pid, "VmHWM")
        stderr = reg.daemon.stderr()
        late = posts[0].arrival_ns - reg.opening_ns if posts else -1
    return LoadOutcome(load, hammer, run_id, run, late, head, rss_idle, rss_after, peak, stderr)


def assert_isolated(outcome: LoadOutcome) -> None:
    """Everything issue 5 point 5 asks, except the fire instant (a benchmark)."""
    load, hammer = outcome.load, outcome.hammer
    summary = load.summary()
    print(
        f"\ntail clients: {summary}\nstatus hammer: {hammer.summary()}\n"
        f"daemon VmRSS idle {outcome.rss_idle_kib / 1024:.1f} MiB, after "
        f"{outcome.rss_after_kib / 1024:.1f} MiB, VmHWM {outcome.hwm_kib / 1024:.1f} MiB; "
        f"head {outcome.head}; first POST {outcome.first_arrival_late_ns / 1e6:.3f} ms after "
        f"the opening; ERROR lines in the daemon's log: {outcome.stderr.count(' ERROR ')}"
    )
    assert summary["by_role"] == {
        Role.STEADY: STEADY_CLIENTS,
        Role.RECONNECTING: RECONNECTING_CLIENTS,
        Role.STALLED: STALLED_CLIENTS,
    }
    assert load.problems == [] and hammer.problems == []
    assert (summary["gaps"], summary["duplicates"]) == (0, 0)
    assert [c.number for c in load.behind(outcome.head)] == []
    assert all(c.events == outcome.head == c.last_seq for c in load.clients)
    assert summary["reconnects"] > RECONNECTING_CLIENTS and summary["abrupt_hang_ups"] > 0
    assert hammer.requests > 0 and outcome.run_id in hammer.run_ids
    assert outcome.run["phase"] == "done"
    assert outcome.first_arrival_late_ns >= 0, "the run fired, never early"
    assert outcome.rss_after_kib - outcome.rss_idle_kib < LOAD_RSS_LIMIT_KIB
    assert outcome.hwm_kib - outcome.rss_idle_kib < LOAD_RSS_LIMIT_KIB
    assert "connection failed" not in outcome.stderr


@pytest.mark.slow
def test_tail_clients_and_a_status_hammer_during_a_run(short_dir: Path) -> None:
    """No gap or duplicate for any of 100 tail clients; the run completes; RSS bounded."""
    assert_isolated(loaded_run(short_dir, overflow_events=0))


@pytest.mark.slow
def test_stalled_clients_whose_live_queue_overflowed_still_miss_nothing(short_dir: Path) -> None:
    """As above, then 5,000 events while 20 clients do not read: they resume from disk."""
    assert_isolated(loaded_run(short_dir, overflow_events=OVERFLOW_EVENTS))
