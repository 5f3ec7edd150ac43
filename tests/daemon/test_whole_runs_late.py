"""Late starts on the real daemon against the simulator: a run started after the opening, and a
run whose daemon was down at it, each fire once at once; further back than the window, no run."""

from __future__ import annotations

import re
import signal
from pathlib import Path

from obsctl.event_view import event_line
from obsd.core.timing import NS
from tests.conftest import wait_until
from tests.harness import iso, registration


def test_a_run_started_minutes_after_the_opening_fires_at_once(short_dir: Path) -> None:
    with registration(short_dir, opening_in_s=-130) as reg:
        reg.plan(ecrn=["21234"], scrn=["20456"])
        started = reg.request("start")
        run_id = started["data"]["run_id"]
        events = reg.wait_for("done", timeout_s=30)
        run = reg.run_detail(run_id)
        status = reg.request("runs")["data"]["items"][0]
        posts = reg.posts()
    assert any("a late start" in w for w in started["data"]["warnings"]), started
    (late,) = [e for e in events if e["type"] == "late_start"]
    assert 128 < late["payload"]["late_by_s"] < 160, late
    line = event_line(late)
    assert re.search(r"a late start, 2 min \d\d s after the target$", line), line
    assert len(posts) == 1 and posts[0].arrival_ns >= reg.opening_ns
    assert run["phase"] == "done" and run["late_by_s"] == late["payload"]["late_by_s"]
    assert {c["crn"]: c["state"] for c in run["crns"]} == {"21234": "success", "20456": "success"}
    assert status["late_by_s"] == run["late_by_s"] and status["opening_missed"] is False


def test_a_run_whose_daemon_was_down_at_the_opening_records_it_and_fires_on_restart(
    short_dir: Path,
) -> None:
    with registration(short_dir, opening_in_s=4) as reg:
        reg.plan(ecrn=["21234"])
        run_id = reg.start()
        reg.wait_for("countdown", timeout_s=20)
        assert reg.daemon.stop(signal.SIGTERM) == 0
        # The daemon stays down through the opening.
        wait_until(lambda: reg.sim.true_time_ns() > reg.opening_ns + NS, 30, "the opening to pass")
        assert reg.posts() == []
        reg.daemon.start()
        events = reg.wait_for("done", timeout_s=30)
        run = reg.run_detail(run_id)
        posts = reg.posts()
    kinds = [e["type"] for e in events]
    assert kinds.index("run_resumed") < kinds.index("opening_missed") < kinds.index("request_armed")
    assert "late_start" not in kinds
    assert run["opening_missed"] is True and run["late_by_s"] > 1
    assert len(posts) == 1 and run["phase"] == "done"


def test_a_target_further_back_than_the_window_is_refused(short_dir: Path) -> None:
    with registration(short_dir, opening_in_s=-130) as reg:
        reg.plan(ecrn=["21234"])  # 130 s ago: a late start by the default window
        # A narrower window set later does not touch the stored target; start judges it.
        assert reg.configure(late_start_window=60)["success"]
        refused = reg.request("start")
        too_old = reg.configure(target=iso(reg.opening_ns - 4 * 3600 * NS))
        posts = reg.posts()
    assert refused["error"]["code"] == "NOT_READY"
    assert "has passed, more than late_start_window (0:01:00) ago" in refused["error"]["message"]
    assert too_old["error"]["code"] == "VALIDATION_ERROR", too_old
    assert "check the day" in too_old["error"]["message"]
    assert posts == []
