"""`obsctl login` on the real daemon against the simulated İTÜ: the password goes in without
echo or argument, is kept 0600, shows nowhere, and `--check` walks the whole flow once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.harness import PASSWORD, STUDENT_WHO_LOGS_IN, Registration, registration

STUDENTS = [STUDENT_WHO_LOGS_IN]


def obsctl(reg: Registration, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "obsctl", "--socket", str(reg.daemon.socket), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def everything_written(reg: Registration, *outputs: subprocess.CompletedProcess[str]) -> str:
    """The daemon's stderr, its event log, and what obsctl printed."""
    log = "".join(p.read_text() for p in (reg.daemon.state_dir / "log").glob("*.jsonl"))
    printed = "".join(o.stdout + o.stderr for o in outputs)
    return reg.daemon.stderr() + log + printed


def test_login_keeps_the_password_0600_and_shows_only_the_user_name(short_dir: Path) -> None:
    with registration(short_dir, students=STUDENTS) as reg:
        reg.plan(ecrn=["21234"])
        login = obsctl(reg, "login", stdin=f"ayse\n{PASSWORD}\n")
        config = obsctl(reg, "config")
        json_config = obsctl(reg, "--json", "config")
        kept = reg.daemon.state_dir / "itu-login"
        mode = os.stat(kept).st_mode & 0o777
        written = everything_written(reg, login, config, json_config)
    assert login.returncode == 0, login.stderr
    assert "ayse, password set (from state_dir)" in login.stdout
    assert "login" in config.stdout and "ayse, password set" in config.stdout
    assert mode == 0o600
    assert PASSWORD not in written and "Ayşe-pass" not in written


def test_login_check_walks_the_flow_and_tests_the_token(short_dir: Path) -> None:
    with registration(short_dir, students=STUDENTS) as reg:
        reg.plan(ecrn=["21234"])
        assert obsctl(reg, "login", stdin=f"ayse\n{PASSWORD}\n").returncode == 0
        check = obsctl(reg, "login", "--check")
        assert obsctl(reg, "login", stdin="ayse\nwrong\n").returncode == 0
        wrong = obsctl(reg, "login", "--check")
        written = everything_written(reg, check, wrong)
        registrations = reg.posts()
    assert check.returncode == 0, check.stderr
    lines = check.stdout.splitlines()
    assert any(line.startswith("step") and "login page: GET" in line for line in lines)
    assert any("user name and password: POST" in line for line in lines)
    assert "OBS accepts the token" in check.stdout and "login works" in check.stdout
    assert "FAILED (LOGIN_WRONG_PASSWORD)" in wrong.stdout
    assert "İTÜ refused the user name or password" in wrong.stdout
    assert registrations == [], "a login check never registers"
    assert PASSWORD not in written


def test_logout_forgets_and_a_check_without_credentials_is_refused(short_dir: Path) -> None:
    with registration(short_dir, students=STUDENTS) as reg:
        reg.plan(ecrn=["21234"])
        assert obsctl(reg, "login", stdin=f"ayse\n{PASSWORD}\n").returncode == 0
        logout = obsctl(reg, "logout")
        check = obsctl(reg, "login", "--check")
        gone = not (reg.daemon.state_dir / "itu-login").exists()
    assert "not set (obsctl login)" in logout.stdout and gone
    assert check.returncode == 2 and "LOGIN_MISSING" in check.stderr


def test_without_a_password_on_stdin_login_says_what_it_needs(short_dir: Path) -> None:
    with registration(short_dir, students=STUDENTS) as reg:
        refused = obsctl(reg, "login", stdin="ayse\n")
    assert refused.returncode == 1
    assert "give the İTÜ user name, then the password" in refused.stderr


def test_a_password_with_a_newline_is_refused_without_being_echoed(short_dir: Path) -> None:
    with registration(short_dir, students=STUDENTS) as reg:
        refused = reg.request("login", username="ayse", password="first\nsecond")
        login = reg.request("config")["data"]["login"]
    assert refused["error"]["code"] == "VALIDATION_ERROR"
    assert "$.password" in refused["error"]["message"]
    assert "first" not in str(refused) and login["configured"] is False


def test_a_login_check_is_refused_close_to_a_shot(short_dir: Path) -> None:
    with registration(short_dir, opening_in_s=30, students=STUDENTS) as reg:
        reg.plan(ecrn=["21234"])
        assert obsctl(reg, "login", stdin=f"ayse\n{PASSWORD}\n").returncode == 0
        reg.start()
        check = obsctl(reg, "login", "--check")
        assert reg.request("cancel")["success"]
        logins = [r for r in reg.sim.requests() if r.path.startswith(("/login", "/Login"))]
    assert check.returncode == 2 and "RUN_IN_PROGRESS" in check.stderr
    assert "fires within 90 s" in check.stderr
    assert logins == [], "no login traffic near the shot"
