"""Runs that log in for their own token, on the real daemon against the simulated İTÜ: a token
that would expire before the opening is replaced in time and the run fires with the fresh
one; a wrong password is told at once, hours ahead; no login traffic near the shot."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from obsd.core.login_pages import JWT_PATH, START_PATH, STUDENT_HOME_PATH
from obsd.core.timing import NS
from obsd.core.token_refresh import LATEST_BEFORE_S
from obsd.sim.sso import FORM_PATH
from tests.conftest import wait_until
from tests.harness import PASSWORD, STUDENT, STUDENT_WHO_LOGS_IN, Registration, registration
from tests.notice_receivers import record_command, recorded

STUDENTS = [STUDENT_WHO_LOGS_IN]
LOGIN_PATHS = {START_PATH, FORM_PATH, STUDENT_HOME_PATH, JWT_PATH}


def login(reg: Registration, password: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "obsctl", "--socket", str(reg.daemon.socket), "login"],
        input=f"ayse\n{password}\n",
        text=True,
        check=True,
        capture_output=True,
        timeout=60,
    )


# Long enough for a start, its login and the calibration before the last 90 s (no login
# traffic then), short enough for a test.
OPENING_IN_S = LATEST_BEFORE_S + 15


@pytest.mark.slow
def test_a_token_that_would_expire_first_is_replaced_and_the_run_fires_with_the_fresh_one(
    short_dir: Path,
) -> None:
    with registration(short_dir, opening_in_s=OPENING_IN_S, students=STUDENTS) as reg:
        # Still valid now, expired long before the opening: without a login, start refuses.
        short_lived = reg.sim.token(STUDENT, lifetime_s=30)
        reg.plan(ecrn=["21234"], token=short_lived)
        login(reg, PASSWORD)
        started = reg.request("start")
        assert started["success"], started
        events = reg.wait_for("done", timeout_s=OPENING_IN_S + 60)
        run = reg.run_detail(started["data"]["run_id"])
        requests = reg.sim.requests()
        everything = reg.daemon.stderr() + "".join(
            p.read_text() for p in (reg.daemon.state_dir / "log").glob("*.jsonl")
        )
    assert any("obsd logs in for a fresh one" in w for w in started["data"]["warnings"])
    (refreshed,) = [e for e in events if e["type"] == "token_refreshed"]
    assert refreshed["payload"]["kind"] == "login"
    (post,) = [r for r in requests if r.method == "POST" and r.path.startswith("/api/")]
    assert post.arrival_ns >= reg.opening_ns, "never early"
    assert post.token_fingerprint == refreshed["payload"]["token"]["fingerprint"]
    assert run["phase"] == "done" and run["crns"][0]["state"] == "success"
    logins = [r for r in requests if r.path in LOGIN_PATHS]
    assert logins, "the daemon logged in"
    quiet_from = reg.opening_ns - int(LATEST_BEFORE_S * NS)
    assert all(r.arrival_ns < quiet_from for r in logins), "no login traffic near the shot"
    assert PASSWORD not in everything


def test_a_wrong_password_is_told_at_once_hours_ahead(short_dir: Path) -> None:
    out = short_dir / "notices"
    command = ["--notify-command", shlex.join(record_command(out))]
    with registration(
        short_dir, opening_in_s=3 * 3600, students=STUDENTS, daemon_args=command
    ) as reg:
        reg.plan(ecrn=["21234"])
        login(reg, "not her password")
        reg.start()
        events = reg.wait_for("token_refresh_failed", timeout_s=60)
        wait_until(
            lambda: any("LOGIN_WRONG_PASSWORD" in r["notice"]["message"] for r in recorded(out)),
            30,
            "the notice of the wrong password",
        )
        status = reg.request("status")["data"]
        assert reg.request("cancel")["success"]
        run_id = status["active_run"]["run_id"]
        obsctl = [sys.executable, "-m", "obsctl", "--socket", str(reg.daemon.socket)]
        report = subprocess.run(
            [*obsctl, "run", run_id, "--format", "md"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    failed = events[-1]["payload"]
    assert failed["code"] == "LOGIN_WRONG_PASSWORD" and failed["kind"] == "login"
    assert failed["kept"] is not None, "the configured token is kept"
    assert status["phase"] == "waiting", "the run goes on with the token it has"
    assert "## Token refreshes" in report and "| login | " in report and "| failed |" in report


def test_without_credentials_a_token_that_will_not_last_is_a_warning_hours_ahead(
    short_dir: Path,
) -> None:
    with registration(short_dir, opening_in_s=3 * 3600) as reg:
        reg.plan(ecrn=["21234"])
        reg.start()
        reg.wait_for("countdown", timeout_s=30)
        # A token pasted later that will not last: the run, resumed, says so while it waits.
        assert reg.configure(token=reg.sim.token(STUDENT, lifetime_s=600))["success"]
        assert reg.daemon.stop() == 0
        reg.daemon.start()

        def warnings() -> list[str]:
            page = reg.request("events", after_seq=0, limit=1000, types=["log"])["data"]
            return [
                e["payload"]["message"] for e in page["items"] if e["payload"]["level"] == "warning"
            ]

        wait_until(lambda: any("obsctl login" in w for w in warnings()), 30, "the warning")
        problems = reg.request("health")["data"]["problems"]
        told = warnings()
    (warning,) = [w for w in told if "obsctl login" in w]
    assert warning.startswith("the token expires at ")
    assert any("the token expires at" in p for p in problems)
