"""The one writer path: folded, then written, then published, then durable; an event the
fold refuses is never written; followers get the exact bytes and never block the writer."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from obsd.core.config import Config
from obsd.core.events import Actor, DaemonStoppedPayload, PhaseChangedPayload, RunCreatedPayload
from obsd.core.phases import Phase
from obsd.core.state import ImpossibleEvent
from obsd.core.token import TokenInfo
from obsd.daemon.journal import Journal
from tests.fake_clock import FakeClock


def open_journal(directory: Path, queue: int = 4096) -> Journal:
    return Journal.open(directory, FakeClock(), subscriber_queue=queue)


async def test_an_append_is_folded_written_and_durable(tmp_path: Path) -> None:
    journal = open_journal(tmp_path)
    event = await journal.append(DaemonStoppedPayload(reason="x"))
    assert journal.log.durable_seq == journal.log.head_seq == event.seq == 2
    assert journal.state.log_id is not None, "the lineage event was folded at open"
    journal.log.close()
    reopened = open_journal(tmp_path)
    assert reopened.log.head_seq == 2 and reopened.state.log_id == journal.state.log_id
    reopened.log.close()


async def test_an_event_the_phase_table_refuses_is_never_written(tmp_path: Path) -> None:
    journal = open_journal(tmp_path)
    await journal.append(
        RunCreatedPayload(
            "r1", Actor(0, 1), Config(ecrn=("21234",)), TokenInfo(fingerprint="f", exp=None), 0
        )
    )
    head = journal.log.head_seq
    with pytest.raises(ImpossibleEvent):
        await journal.append(PhaseChangedPayload("r1", Phase.DONE))
    assert journal.log.head_seq == head and journal.state.runs["r1"].phase == "calibrating"
    journal.log.close()


async def test_followers_get_the_exact_lines_and_overflow_without_blocking(tmp_path: Path) -> None:
    journal = open_journal(tmp_path, queue=3)
    subscription = journal.subscribe()
    for n in range(3):
        await journal.append(DaemonStoppedPayload(reason=str(n)), durable=False)
    lines = await subscription.take(1)
    assert lines is not None and [seq for seq, _ in lines] == [2, 3, 4]
    assert lines[0][1] == (await journal.log.read_after(1)).splitlines(keepends=True)[0]
    assert msgspec.json.decode(lines[0][1])["payload"] == {"reason": "0"}
    for n in range(4):
        await journal.append(DaemonStoppedPayload(reason=f"burst {n}"), durable=False)
    assert await subscription.take(4) is None, "overflowed: back to the disk"
    assert subscription.overflows == 1
    journal.unsubscribe(subscription)
    journal.log.close()
