"""Notifications from the real daemon through a real command and a loopback HTTP receiver: the
run's end, a late start and a problem before the target reach a person; nothing is delivered
near a shot; a failing command is logged once and never touches the run; no secret is told."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from obsd.core.timing import NS
from tests.conftest import wait_until
from tests.harness import STUDENT, registration
from tests.notice_receivers import receiver, record_command, recorded

CLOCK_OFFSET_NS = round(1.75 * NS)  # tests/harness.py's simulator: true = local + 1.75 s


def kinds(out: Path) -> list[str]:
    return [r["notice"]["kind"] for r in recorded(out)]


def token_notices(out: Path) -> list[dict[str, object]]:
    """Notices that the token will not last until the target."""
    return [
        r["notice"]
        for r in recorded(out)
        if str(r["notice"]["message"]).startswith("run ")
        and "the token expires at" in str(r["notice"]["message"])
    ]


def notify_args(out: Path, exit_status: int = 0) -> list[str]:
    return ["--notify-command", shlex.join(record_command(out, exit_status=exit_status))]


def test_a_run_s_end_reaches_the_command_and_a_url_and_never_near_the_shot(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = short_dir / "notices"
    credentials = short_dir / "credentials"
    credentials.mkdir()
    with receiver() as http:
        # The URL as a systemd credential, the way the operations guide sets it up.
        (credentials / "notify-urls").write_text(f"# phone\n{http.url('json', 'obsd')}\n")
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
        with registration(short_dir, opening_in_s=3, daemon_args=notify_args(out)) as reg:
            token = reg.sim.token(STUDENT)
            reg.plan(ecrn=["21234"], scrn=["20456"], token=token)
            reg.start()
            reg.wait_for("done", timeout_s=30)
            wait_until(lambda: recorded(out) and http.posts, 30, "the done notice")
            (post,) = reg.posts()
        ((path, body),) = http.posts
    assert path == "/obsd"
    (record,) = recorded(out)
    notice = record["notice"]
    assert notice["kind"] == "run_done"
    assert notice["title"] == "obsd: run done, 1 of 1 courses added"
    assert "21234 add: success" in notice["message"] and "20456 drop: success" in notice["message"]
    assert notice["event"]["type"] == "done"
    assert (body["title"], body["message"]) == (notice["title"], notice["message"])
    # Held until the run ended: after the POST's answer, not in the run-up to it.
    fire_local_ns = post.arrival_ns - CLOCK_OFFSET_NS
    assert record["at_ns"] > fire_local_ns
    assert "CREDENTIALS_DIRECTORY" not in record["environment"]
    signature = token.rsplit(".", 1)[1]
    for text in (out.read_text(), str(body)):
        assert token not in text and signature not in text


def test_a_late_start_is_told_and_then_the_run_s_end(short_dir: Path) -> None:
    out = short_dir / "notices"
    with registration(short_dir, opening_in_s=-130, daemon_args=notify_args(out)) as reg:
        reg.plan(ecrn=["21234"])
        reg.start()
        reg.wait_for("done", timeout_s=30)
        wait_until(lambda: len(recorded(out)) == 2, 30, "two notices")
        (post,) = reg.posts()
    late, done = (r["notice"] for r in recorded(out))
    # Found just before the shot, it waited for the run's end: nothing runs beside the POST.
    assert recorded(out)[0]["at_ns"] > post.arrival_ns - CLOCK_OFFSET_NS
    assert late["kind"] == "late_start" and "a late start, 2 min" in late["title"]
    assert done["kind"] == "run_done"


def test_a_problem_before_the_target_is_told_hours_ahead_and_a_failing_command_once(
    short_dir: Path,
) -> None:
    out = short_dir / "notices"
    args = notify_args(out, exit_status=1)
    with registration(short_dir, opening_in_s=3600, daemon_args=args) as reg:
        reg.plan(ecrn=["21234"])
        run_id = reg.start()
        reg.wait_for("countdown", timeout_s=30)
        # A fresh token that will not last until the opening: it needs a person now.
        assert reg.configure(token=reg.sim.token(STUDENT, lifetime_s=600))["success"]
        wait_until(lambda: token_notices(out), 30, "the token's attention notice")
        health = reg.request("health")["data"]
        assert reg.request("cancel")["success"]
        wait_until(lambda: kinds(out)[-1:] == ["run_cancelled"], 30, "the cancel notice")
        stderr = reg.daemon.stderr()
        status = reg.request("status")["data"]
    (attention,) = token_notices(out)
    assert attention["kind"] == "attention" and attention["run_id"] == run_id
    assert attention["title"] == "obsd needs attention before the opening"
    assert attention["event"] is None
    # Each problem once: the harness's clock, 1.75 s off NTP time, is one too.
    told = [r["notice"]["message"] for r in recorded(out) if r["notice"]["kind"] == "attention"]
    assert len(told) == len(set(told)) >= 2, told
    # The failure is logged once for several failed deliveries, shown by health, and the run
    # went on as if nothing had happened.
    assert stderr.count("exited with status 1") == 1, stderr
    assert any("exited with status 1" in p for p in health["problems"]), health
    assert status["phase"] == "idle"
