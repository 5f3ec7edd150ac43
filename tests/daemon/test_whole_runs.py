"""Whole runs: the real daemon registering against the real simulator over loopback.

The simulator's clock is deliberately off from this machine's, so every run here also shows
that the daemon fires on NTP time. Its arrival log is the judge of timing. The retry rules
themselves are driven in process on a fake clock (test_driver.py); these few show the whole:
on time, every result, start's checks, cancel, SIGKILL and resume, the history.
"""

import signal
from pathlib import Path

from obsd.sim import NtpBehaviour
from tests.harness import NS, STUDENT, iso, registration


def test_a_run_fires_on_time_and_handles_every_result(short_dir: Path) -> None:
    # One of the three NTP servers lies by 10 s and answers fastest: it is outvoted.
    liar = NtpBehaviour(lie_s=-10.0)
    honest = NtpBehaviour(delay_s=0.002)
    with registration(short_dir, ntp=[liar, honest, honest]) as reg:
        reg.plan(
            ecrn=["21234", "22001", "24010", "24020"], scrn=["20456"], backup={"22001": "22002"}
        )
        run_id = reg.start()
        events = reg.wait_for("done", timeout_s=30)
        run = reg.run_detail(run_id)
        posts = reg.posts()
    assert posts[0].arrival_ns >= reg.opening_ns, "never early"
    states = {c["crn"]: c["state"] for c in run["crns"]}
    assert states == {
        "21234": "success",
        "22001": "full",
        "24010": "success",
        "24020": "conflict",
        "20456": "success",
        "22002": "success",
    }
    assert run["phase"] == "done"
    # The backup went out in a second POST, spaced by retry_interval from the first.
    assert [p.body for p in posts] == [
        {"ECRN": ["21234", "22001", "24010", "24020"], "SCRN": ["20456"]},
        {"ECRN": ["22002"], "SCRN": []},
    ]
    assert posts[1].arrival_ns - posts[0].arrival_ns >= 3.5 * NS
    phases = [e["payload"]["phase"] for e in events if e["type"] == "state"]
    assert phases == ["waiting", "registering"]
    # A calibration, and one more at each re-check of the time before the shot.
    *_, calibration = [e["payload"] for e in events if e["type"] == "calibration"]
    verdicts = [s["verdict"] for s in calibration["sources"][:3]]
    assert verdicts[0] == "falseticker" and sorted(verdicts[1:]) == ["chosen", "truechimer"]
    assert sum(e["type"] == "countdown" for e in events) >= 1


def test_a_token_that_expires_too_soon_is_refused_at_start(short_dir: Path) -> None:
    with registration(short_dir) as reg:
        reg.plan(ecrn=["21234"], token=reg.sim.token(STUDENT, lifetime_s=60))
        refused = reg.request("start")
        assert refused["error"]["code"] == "TOKEN_EXPIRED"
        assert "expires" in refused["error"]["message"]
        assert reg.request("status")["data"]["phase"] == "idle"
    assert reg.posts() == []


def test_start_needs_a_plan_and_a_token(short_dir: Path) -> None:
    with registration(short_dir) as reg:
        assert reg.request("start")["error"]["code"] == "NOT_READY"
        reg.configure(ecrn=["21234"], target=iso(reg.opening_ns))
        assert reg.request("start")["error"]["code"] == "TOKEN_MISSING"


def test_cancel_in_waiting_stops_before_any_post(short_dir: Path) -> None:
    with registration(short_dir, opening_in_s=20) as reg:
        reg.plan(ecrn=["21234"])
        run_id = reg.start()
        reg.wait_for("countdown", timeout_s=20)
        cancelled = reg.request("cancel")
        assert cancelled["success"] and cancelled["data"]["was"] == "waiting"
        run = reg.run_detail(run_id)
        assert reg.request("status")["data"]["phase"] == "idle"
    assert run["phase"] == "cancelled" and reg.posts() == []


def test_cancel_right_after_start_stops_calibration(short_dir: Path) -> None:
    with registration(short_dir, opening_in_s=20) as reg:
        reg.plan(ecrn=["21234"])
        run_id = reg.start()
        cancelled = reg.request("cancel")
        assert cancelled["success"] and cancelled["data"]["was"] == "calibrating"
        assert reg.run_detail(run_id)["phase"] == "cancelled"
    assert reg.posts() == []


def test_cancel_while_registering_stops_further_posts(short_dir: Path) -> None:
    with registration(short_dir) as reg:
        reg.plan(ecrn=["22001"], retry_full=True)
        run_id = reg.start()
        reg.wait_for("crn_update", timeout_s=30)
        assert reg.request("cancel")["data"]["was"] == "registering"
        run = reg.run_detail(run_id)
        posts_at_cancel = len(reg.posts())
        assert reg.request("status")["data"]["phase"] == "idle"
    assert run["phase"] == "cancelled" and posts_at_cancel == 1
    assert len(reg.posts()) == 1, "nothing was sent after the cancel"


def test_a_run_survives_sigkill_before_the_instant(short_dir: Path) -> None:
    with registration(short_dir, opening_in_s=6) as reg:
        reg.plan(ecrn=["21234"], scrn=["20456"])
        run_id = reg.start()
        reg.wait_for("countdown", timeout_s=20)
        reg.daemon.stop(signal.SIGKILL)
        reg.daemon.start()
        events = reg.wait_for("done", timeout_s=30)
        run = reg.run_detail(run_id)
        posts = reg.posts()
    assert any(e["type"] == "run_resumed" for e in events)
    assert len(posts) == 1 and posts[0].arrival_ns >= reg.opening_ns
    assert run["phase"] == "done" and run["resumes"] == 1


def test_runs_history_and_delete(short_dir: Path) -> None:
    with registration(short_dir, opening_in_s=20) as reg:
        reg.plan(ecrn=["21234"])
        first = reg.start()
        assert reg.request("delete_run", run_id=first)["error"]["code"] == "RUN_IN_PROGRESS"
        assert reg.request("start")["error"]["code"] == "RUN_IN_PROGRESS"
        reg.request("cancel")
        second = reg.start()
        reg.request("cancel")
        page = reg.request("runs", limit=1)["data"]
        assert [item["run_id"] for item in page["items"]] == [second]
        assert page["pagination"]["total_items"] == 2 and page["pagination"]["has_next"]
        oldest = reg.request("runs", sort="created_asc", status="cancelled")["data"]
        assert [item["run_id"] for item in oldest["items"]] == [first, second]
        assert reg.request("delete_run", run_id=first)["success"]
        assert reg.request("run", run_id=first)["error"]["code"] == "RUN_NOT_FOUND"
        assert reg.request("runs")["data"]["pagination"]["total_items"] == 1
