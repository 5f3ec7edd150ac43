"""`obsctl watch-seat` against a real daemon and the simulator's public schedule: a drop is
refused with the risk in plain words until accepted, the watch shows in status, runs and tail,
and `cancel ID` stops it."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from obsctl.watch_seat import request_fields, until_instant
from tests.harness import registration
from tests.obsctl.test_cli import obsctl

NOW = datetime(2026, 2, 10, 9, 0, tzinfo=UTC)


def test_until_takes_a_span_from_now_or_an_instant_as_written() -> None:
    assert until_instant("90m", NOW) == "2026-02-10T10:30:00+00:00"
    assert until_instant("12h", NOW) == "2026-02-10T21:00:00+00:00"
    assert until_instant("3d", NOW) == "2026-02-13T09:00:00+00:00"
    assert until_instant("2026-02-12T18:00+03:00", NOW) == "2026-02-12T18:00+03:00"


def test_the_options_make_the_request() -> None:
    args = argparse.Namespace(
        crn="22001", branch="BLG", drop=["20456"], accept_drop_risk=True, every=120.0, until="1d"
    )
    assert request_fields(args, NOW) == {
        "crn": "22001",
        "branch": "BLG",
        "drop": ["20456"],
        "accept_drop_risk": True,
        "every": 120.0,
        "until": "2026-02-11T09:00:00+00:00",
    }


def test_a_watch_is_refused_a_drop_until_the_risk_is_accepted_then_listed_and_cancelled(
    short_dir: Path,
) -> None:
    with registration(short_dir, opening_in_s=-600) as reg:
        reg.plan(ecrn=["21234"])
        socket = reg.daemon.socket
        refused = obsctl(socket, "watch-seat", "22001", "--branch", "blg", "--drop", "20456")
        assert refused.returncode == 2, refused
        assert "OBS applies a drop even when the add in the same request fails" in refused.stderr
        assert "--accept-drop-risk" in refused.stderr
        assert "--every" in obsctl(socket, "watch-seat", "-h").stdout
        slow = obsctl(socket, "watch-seat", "22001", "--branch", "BLG", "--every", "30")
        assert slow.returncode == 2 and "$.every" in slow.stderr
        started = obsctl(
            socket,
            "watch-seat",
            "22001",
            "--branch",
            "blg",
            "--drop",
            "20456",
            "--accept-drop-risk",
            "--until",
            "2h",
        )
        assert started.returncode == 0, started
        run_id = started.stdout.split()[1]
        assert f"stop it with: obsctl cancel {run_id}" in started.stdout
        assert "warning: OBS applies a drop" in started.stdout
        status = obsctl(socket, "status")
        assert "watching 22001 (BLG)" in status.stdout and run_id in status.stdout
        listed = obsctl(socket, "runs")
        assert "watch BLG 22001" in listed.stdout
        idle = obsctl(socket, "cancel")
        assert idle.returncode == 2 and run_id in idle.stderr, "no timed run: the watch named"
        cancelled = obsctl(socket, "cancel", run_id)
        assert cancelled.returncode == 0 and "cancelled (it was watching)" in cancelled.stdout
        tail = obsctl(socket, "tail")
        assert "watch " in tail.stdout and "a seat in 22001 (BLG)" in tail.stdout
        report = obsctl(socket, "run", run_id)
        assert "Watch: a seat in 22001 on the BLG schedule page" in report.stdout
