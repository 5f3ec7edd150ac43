"""The run driver against the time sources a VPS really meets, on a fake clock.

Every scenario is judged by when the POST reached the scripted OBS in true time: never before
the opening, on time whenever an honest majority (or OBS's own Date header) says where true
time is, and late-but-safe or refused when nothing does.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from obsd.core.clock_select import KernelClock, TimeStatus
from obsd.core.events import PhaseChangedPayload
from obsd.core.phases import Phase
from obsd.core.time_sources import MIN_QUERY_INTERVAL_NS, Verdict
from obsd.core.timing import NS
from obsd.core.waiting import RECHECK_NTP_EVERY_S
from obsd.sim import NtpBehaviour
from tests.daemon.scripted import MS, SERVERS, Drive, obs_answer, planned

HONEST = NtpBehaviour(delay_s=0.0002)
SUCCESS = obs_answer({"21234": "successResult"})


def late_ms(drive: Drive) -> float:
    """How long after the opening the one POST reached OBS (true time)."""
    (post,) = drive.obs.posts
    return (post.true_ns - drive.target_ns) / MS


def verdicts(drive: Drive) -> dict[str, Verdict]:
    calibration = drive.run.calibration
    assert calibration is not None
    return {view.source: view.verdict for view in calibration.sources}


async def test_a_falseticker_with_the_lowest_delay_is_named_and_ignored(tmp_path: Path) -> None:
    for lie_s in (-10.0, 10.0):
        liar = NtpBehaviour(lie_s=lie_s, delay_s=0.00005)
        drive = await planned(tmp_path / str(lie_s), [SUCCESS], ntp=[liar, HONEST, HONEST])
        run = await drive.to_the_end()
        assert 1.0 <= late_ms(drive) < 1.2, "target + 1 ms buffer + the bound of a 0.2 ms path"
        assert verdicts(drive)[SERVERS[0]] == Verdict.FALSETICKER
        assert {verdicts(drive)[s] for s in SERVERS[1:3]} == {Verdict.CHOSEN, Verdict.TRUECHIMER}
        assert run.phase == Phase.DONE


async def test_with_no_majority_the_shot_waits_for_the_latest_credible_instant(
    tmp_path: Path,
) -> None:
    ahead = await planned(tmp_path / "a", [SUCCESS], ntp=[HONEST, NtpBehaviour(lie_s=10.0)])
    await ahead.to_the_end()
    assert 1.0 <= late_ms(ahead) < 1.2, "the lie that time is later cannot make it early"
    behind = await planned(tmp_path / "b", [SUCCESS], ntp=[HONEST, NtpBehaviour(lie_s=-10.0)])
    await behind.to_the_end()
    assert 10_000 <= late_ms(behind) < 10_100, "late, but never early"
    assert set(verdicts(behind).values()) >= {Verdict.CONFLICTING}
    assert behind.run.calibration is not None
    assert behind.run.calibration.time_status == TimeStatus.CONFLICT
    assert any("no majority of the 2 answering servers agrees" in m for m in behind.said())


async def test_obs_date_header_overrules_a_lying_majority(tmp_path: Path) -> None:
    liars = [NtpBehaviour(lie_s=5.0)] * 3
    drive = await planned(tmp_path, [SUCCESS], ntp=liars, date_skew_s=0.0)
    await drive.to_the_end()
    assert 0 <= late_ms(drive) < 1_300, "by the Date header: never early, at most ~1.2 s late"
    assert any(
        "OBS's Date header disagrees with the NTP majority by -4." in m for m in drive.said()
    )


async def test_obs_date_header_breaks_a_tie_between_two_servers(tmp_path: Path) -> None:
    ntp = [HONEST, NtpBehaviour(lie_s=-10.0)]
    drive = await planned(tmp_path, [SUCCESS], ntp=ntp, date_skew_s=0.0)
    await drive.to_the_end()
    assert 1.0 <= late_ms(drive) < 1.2
    assert any("Date header sides with " + SERVERS[0] in m for m in drive.said())


async def test_kiss_unsynchronised_and_garbage_servers_are_named_and_left_out(
    tmp_path: Path,
) -> None:
    bad = [
        NtpBehaviour(kind="kiss", kiss_code="RATE"),
        NtpBehaviour(kind="unsynchronised"),
        NtpBehaviour(kind="garbage"),
    ]
    drive = await planned(tmp_path, [SUCCESS], ntp=[*bad, HONEST], wait_s=300)
    await drive.to_the_end()
    assert 1.0 <= late_ms(drive) < 1.2
    assert [verdicts(drive)[s] for s in SERVERS[:4]] == [
        Verdict.KISS,
        Verdict.UNSYNCHRONISED,
        Verdict.INVALID,
        Verdict.CHOSEN,
    ]
    kissed = [m for m in drive.said() if "RATE" in m]
    first = f"NTP server {SERVERS[0]}: kiss-o'-death RATE: the server asks us to query less often"
    assert kissed == [f"{first}; resting 64 s", f"{first}; resting 128 s"], "each kiss doubles it"
    asked = [t for s, t in drive.ntp_queries if s == SERVERS[0]]
    assert len(asked) == 2 and asked[1] - asked[0] >= 64 * NS, "it rested after the kiss"


async def test_no_server_is_asked_twice_within_two_seconds(tmp_path: Path) -> None:
    drive = await planned(
        tmp_path, [SUCCESS], ntp=[HONEST] * 4, wait_s=3 * RECHECK_NTP_EVERY_S + 30
    )
    await drive.to_the_end()
    for server in SERVERS[:4]:
        times = [t for s, t in drive.ntp_queries if s == server]
        # Calibration, two ten-minute re-checks (the third falls after the one 10 s before
        # the shot), and the two close to the shot.
        assert len(times) == 5
        assert min(b - a for a, b in itertools.pairwise(times)) >= MIN_QUERY_INTERVAL_NS


async def test_without_any_trustworthy_time_the_run_fails_plainly_and_sends_nothing(
    tmp_path: Path,
) -> None:
    drive = await planned(tmp_path, [], ntp=[NtpBehaviour(kind="silent")] * 2, wait_s=120)
    run = await drive.to_the_end()
    assert drive.obs.posts == [] and run.phase == Phase.FAILED
    assert run.reason is not None and run.reason.startswith("no trustworthy time: no NTP server")
    assert "open outgoing UDP port 123" in run.reason
    assert "the kernel says unsynchronised" in run.reason
    warned = [m for m in drive.said() if m.startswith("no trustworthy time")]
    assert len(warned) == 1, "said once, not at every re-check"
    queries = [t for s, t in drive.ntp_queries if s == SERVERS[0]]
    assert 4 <= len(queries) <= 8, "re-checked every 30 s while unsettled, and no more"


async def test_a_synchronised_kernel_may_stand_alone_with_its_error_added(tmp_path: Path) -> None:
    kernel = KernelClock(synchronised=True, max_error_us=2_000, est_error_us=500)
    drive = await planned(
        tmp_path, [SUCCESS], ntp=[NtpBehaviour(kind="silent")], kernel=kernel, true_offset_ns=0
    )
    await drive.to_the_end()
    assert 3.0 <= late_ms(drive) < 3.1, "1 ms buffer + the kernel's 2 ms bound"
    assert drive.run.calibration is not None
    assert drive.run.calibration.time_status == TimeStatus.SYSTEM_CLOCK


async def test_a_stepped_system_clock_is_noticed_and_the_shot_stays_on_time(
    tmp_path: Path,
) -> None:
    drive = await planned(tmp_path, [SUCCESS], ntp=[HONEST] * 3, wait_s=60)
    drive.clock.when(drive.clock.mono_ns() + 30 * NS, lambda: drive.clock.step_wall(3.0))
    await drive.to_the_end()
    assert 1.0 <= late_ms(drive) < 1.2
    assert any("the system clock jumped" in m for m in drive.said())


async def test_a_paused_vm_is_caught_by_the_watch_or_the_last_recheck(tmp_path: Path) -> None:
    for corrected, step_s, before_s in ((True, 2.0, 20.0), (False, -2.0, 6.0), (False, 2.0, 6.0)):
        drive = await planned(
            tmp_path / f"{corrected}{step_s}",
            [SUCCESS],
            ntp=[HONEST] * 3,
            wait_s=60,
            date_skew_s=0.0,  # and OBS's Date headers, which step with true time
        )
        clock = drive.clock

        def step(clock=clock, corrected=corrected, step_s=step_s) -> None:  # type: ignore[no-untyped-def]
            clock.step_true(step_s)
            if corrected:
                clock.step_wall(step_s)

        clock.when(clock.mono_ns() + round((60 - before_s) * NS), step)
        await drive.to_the_end()
        assert 1.0 <= late_ms(drive) < 1.2, (corrected, step_s)


async def test_a_resumed_run_that_never_sent_its_first_post_needs_trusted_time_too(
    tmp_path: Path,
) -> None:
    """It crashed between entering registering and the shot; on resume no server answers."""
    drive = await planned(tmp_path, [SUCCESS], ntp=[NtpBehaviour(kind="silent")], wait_s=20)
    for phase in (Phase.WAITING, Phase.REGISTERING):
        await drive.journal.append(PhaseChangedPayload(drive.run.run_id, phase, None))
    run = await drive.to_the_end()
    assert drive.obs.posts == [], "no shot on an unknown clock"
    assert run.phase == Phase.FAILED and (run.reason or "").startswith("no trustworthy time")


async def test_a_jump_right_after_a_recheck_waits_for_a_server_to_be_due(tmp_path: Path) -> None:
    drive = await planned(tmp_path, [SUCCESS], ntp=[HONEST] * 3, wait_s=60)
    clock = drive.clock
    # Just after the re-check 3.5 s before: every server was asked a moment ago.
    clock.when(clock.mono_ns() + round(56.6 * NS), lambda: clock.step_wall(-3.0))
    run = await drive.to_the_end()
    assert 1.0 <= late_ms(drive) < 1.2 and run.phase == Phase.DONE
    assert any("the system clock jumped" in m for m in drive.said())
