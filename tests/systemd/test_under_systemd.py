"""obsd under a real systemd as PID 1, installed exactly as docs/operations.md says.

One fresh Debian boots in a container (tests/systemd/container.py) and keeps running through the
module; the simulator runs on this host and the container shares its loopback. The operator's
commands are the guide's: `obsctl` as the student, in the obsd group, and `systemctl` as root.
Each registration is judged by the simulator's arrival log, in its true time.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest

from obsd.core.timing import NS
from obsd.sim import RunningSimulator, Simulator, Student
from obsd.sim.app import RequestRecord
from obsd.sim.config import StudentLogin
from tests.conftest import wait_until
from tests.harness import STUDENT, iso, sim_config
from tests.notice_receivers import receiver
from tests.systemd.container import STEP_TIMEOUT_S, Container, booted, fresh_debian
from tests.systemd.guide import blocks, install_blocks

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3 * STEP_TIMEOUT_S)]

USER: Final = "student"
RELEASE: Final = "trixie"
# The unit's WatchdogSec= (30 s) after the last ping, SIGABRT, RestartSec= (2 s), a fresh start.
WATCHDOG_RESTART_S: Final = 90.0
# Long enough for the run to calibrate, be seen waiting and lose its daemon to the watchdog
# before its final approach: the watchdog needs up to 30 s, the final approach starts at T-60 s.
WATCHDOG_OPENING_IN_S: Final = 130.0
# Enough for a container to power off and boot again before the final approach.
REBOOT_OPENING_IN_S: Final = 100.0
# After the opening, the run's one POST and its answer; on a loaded machine, seconds.
SETTLE_S: Final = 60.0
CRN: Final = "21234"


@dataclass
class Machine:
    """The booted container, rebootable; the tokens handed to its daemon so far."""

    root: Path
    stack: ExitStack
    container: Container
    tokens: list[str] = field(default_factory=list)

    def root_sh(self, script: str, **kwargs: Any) -> str:
        """`script` as root inside; its stdout."""
        return self.container.run(script, **kwargs).stdout

    def obsctl(
        self, *argv: str, stdin: str | None = None, user: str = USER, instance: str | None = None
    ) -> dict[str, Any]:
        """`obsctl --json ARGV` as `user` (of `instance`); the response's data (must succeed)."""
        chosen = () if instance is None else ("-i", instance)
        out = self.container.run(
            " ".join(("obsctl", "--json", *chosen, *argv)), user=user, stdin=stdin
        ).stdout
        response = json.loads(out.splitlines()[0])
        assert response["success"], response
        data: dict[str, Any] = response["data"]
        return data

    def unit(self, *properties: str) -> dict[str, str]:
        """`systemctl show` of obsd.service: the named properties."""
        out = self.root_sh(f"systemctl show obsd.service -p {','.join(properties)}")
        return dict(line.split("=", 1) for line in out.splitlines())

    def main_pid(self) -> int:
        """The daemon's pid, as the container numbers it (0: not running)."""
        return int(self.unit("MainPID")["MainPID"])

    def reboot(self) -> None:
        """Power the container off (a clean shutdown) and boot it again."""
        self.stack.close()
        self.stack = ExitStack()
        self.container = self.stack.enter_context(booted(self.root))

    def events(self) -> list[dict[str, Any]]:
        """The whole event history, through `obsctl events` pages."""
        events: list[dict[str, Any]] = []
        while True:
            page = self.obsctl("events", "--after", str(len(events)), "--limit", "1000")
            events += page["items"]
            if not page["has_more"]:
                return events


@pytest.fixture(scope="module")
def machine() -> Iterator[Machine]:
    """A fresh Debian booted with systemd, obsd installed and enabled as the guide says."""
    install, _ = install_blocks()
    with fresh_debian(RELEASE, USER) as root:
        # A persistent journal under a fixed machine id, so the token check reads every boot.
        (root / "var" / "log" / "journal").mkdir(parents=True, exist_ok=True)
        (root / "etc" / "machine-id").write_text(secrets.token_hex(16) + "\n")
        stack = ExitStack()
        machine = Machine(root, stack, stack.enter_context(booted(root)))
        try:
            machine.container.run(install, user=USER)
            yield machine
        finally:
            machine.stack.close()


@contextmanager
def registration_day(
    machine: Machine, opening_in_s: float, user: str = USER, instance: str | None = None
) -> Iterator[RunningSimulator]:
    """A simulator on this host opening in `opening_in_s`, the daemon configured for it."""
    config = sim_config(opening_in_s)
    assert config.opening_at is not None
    with Simulator(config).serve_in_thread() as sim:
        token = sim.token(STUDENT)
        machine.tokens.append(token)
        servers = " ".join(f"--ntp-server {server}" for server in sim.ntp_servers)
        machine.obsctl(
            "configure",
            f"--ecrn {CRN} --scrn",
            f"--target {iso(int(config.opening_at * NS))}",
            f"--obs-base-url {sim.base_url}",
            servers,
            user=user,
            instance=instance,
        )
        machine.obsctl("configure", "--token -", stdin=token, user=user, instance=instance)
        yield sim


def opening_ns(sim: RunningSimulator) -> int:
    """The simulator's opening, in its true time."""
    assert sim.config.opening_at is not None
    return int(sim.config.opening_at * NS)


def wait_for_phase(machine: Machine, run_id: str, phase: str, timeout_s: float, **who: str) -> None:
    """Until the run reaches `phase` (asked over the socket as an operator would, as `who`)."""
    wait_until(
        lambda: machine.obsctl("run", run_id, **who)["phase"] == phase,
        timeout_s,
        f"run {run_id} {phase}",
    )


def registration_posts(sim: RunningSimulator) -> list[RequestRecord]:
    """The POSTs the simulator received, in arrival order."""
    return [r for r in sim.requests() if r.method == "POST"]


def assert_fired_once_on_time(sim: RunningSimulator) -> None:
    """One POST, at or after the opening in true time, and the CRN registered."""
    posts = registration_posts(sim)
    assert len(posts) == 1, [(p.arrival_ns, p.path) for p in posts]
    late_ms = (posts[0].arrival_ns - opening_ns(sim)) / 1e6
    assert late_ms >= 0, f"the POST arrived {-late_ms:.3f} ms before the opening"
    print(f"the POST arrived {late_ms:.3f} ms after the opening")


def process_status(machine: Machine, pid: int) -> dict[str, str]:
    """/proc/PID/status of a process in the container, as fields."""
    text = machine.root_sh(f"cat /proc/{pid}/status")
    return dict(re.findall(r"^(\w+):\s*(.*)$", text, re.MULTILINE))


def assert_hardened(machine: Machine, pid: int) -> None:
    """The unit's hardening, seen in the live process: what systemd-analyze only promised."""
    status = process_status(machine, pid)
    for capabilities in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[capabilities], 16) == 0, (capabilities, status[capabilities])
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2", status
    # Enter the daemon's own mount namespace: its root and /etc are read-only, its state not.
    probe = machine.container.run(
        f"nsenter -t {pid} -m sh -c 'touch /usr/probe /etc/probe; "
        "touch /var/lib/obsd/probe && rm /var/lib/obsd/probe && echo state-writable' 2>&1",
        check=False,
    ).stdout
    assert probe.count("Read-only file system") == 2, probe
    assert "state-writable" in probe, probe
    # The shot's priority, set by systemd before exec although the unit restricts realtime.
    scheduling = machine.root_sh(f"chrt -p {pid}")
    assert "policy: SCHED_FIFO\n" in scheduling and "priority: 1" in scheduling, scheduling


def test_socket_activation_starts_the_daemon_for_its_first_client(machine: Machine) -> None:
    machine.root_sh("systemctl stop obsd.service")
    assert machine.root_sh("systemctl is-active obsd.service obsd.socket", check=False) == (
        "inactive\nactive\n"
    )
    # The first connection waits in the socket's backlog while systemd starts the daemon.
    assert machine.obsctl("ping") == {"pong": True}
    assert machine.root_sh("systemctl is-active obsd.service") == "active\n"
    listening = machine.root_sh(f"ls -l /proc/{machine.main_pid()}/fd/3")
    assert "socket:" in listening, listening  # fd 3: the socket systemd passed


def test_ready_comes_after_the_replay_with_the_status_line(machine: Machine) -> None:
    for budget_window in (600, 700, 800):
        machine.obsctl("configure", f"--budget-window {budget_window}")
    before = machine.obsctl("status")["log"]["head_seq"]
    # Type=notify: systemctl returns only when the daemon said READY=1.
    machine.root_sh("systemctl restart obsd.service")
    daemon = machine.obsctl("status")["daemon"]
    assert daemon["pid"] == machine.main_pid()
    # The new process had replayed the whole log (and logged its start) before it was ready.
    assert daemon["replayed_events"] >= before, (daemon, before)
    unit = machine.unit("ActiveState", "SubState", "StatusText", "Type")
    assert unit["ActiveState"] == "active" and unit["Type"] == "notify", unit
    assert unit["StatusText"] == "idle; no runs yet", unit
    assert 'Status: "idle; no runs yet"' in machine.root_sh("systemctl status obsd --no-pager")


def test_a_whole_registration_survives_a_watchdog_kill_under_the_hardened_unit(
    machine: Machine,
) -> None:
    with registration_day(machine, WATCHDOG_OPENING_IN_S) as sim:
        restarts = int(machine.unit("NRestarts")["NRestarts"])
        run_id = machine.obsctl("start")["run_id"]
        wait_for_phase(machine, run_id, "waiting", 60)
        first = machine.main_pid()
        assert_hardened(machine, first)
        # STATUS= follows the run about once a second.
        wait_until(
            lambda: machine.unit("StatusText")["StatusText"].startswith("waiting: fires in "),
            10,
            "the waiting status line",
        )
        # A hung daemon: it stops pinging, and systemd's watchdog kills and restarts it.
        machine.root_sh(f"kill -STOP {first}")
        stopped = time.monotonic()
        wait_until(
            lambda: (
                machine.main_pid() not in (0, first)
                and machine.unit("ActiveState")["ActiveState"] == "active"
            ),
            WATCHDOG_RESTART_S,
            "the watchdog's restart",
        )
        print(f"SIGSTOP to a restarted daemon: {time.monotonic() - stopped:.1f} s")
        assert int(machine.unit("NRestarts")["NRestarts"]) == restarts + 1
        journal = machine.root_sh("journalctl -b -u obsd.service -o cat")
        assert "Watchdog timeout" in journal, journal[-2000:]
        resumed = machine.main_pid()
        assert_hardened(machine, resumed)
        remaining_s = (opening_ns(sim) - sim.true_time_ns()) / NS
        assert remaining_s > 0, "the restart took the run past its opening: lengthen the wait"
        wait_for_phase(machine, run_id, "done", remaining_s + SETTLE_S)
        assert_fired_once_on_time(sim)
        run = machine.obsctl("run", run_id)
        assert run["resumes"] == 1 and machine.main_pid() == resumed, run
        assert [c["state"] for c in run["crns"]] == ["success"], run["crns"]


def test_systemctl_stop_is_a_clean_stop(machine: Machine) -> None:
    machine.root_sh("systemctl stop obsd.service")
    unit = machine.unit("Result", "ExecMainStatus", "ActiveState")
    assert unit == {"Result": "success", "ExecMainStatus": "0", "ActiveState": "inactive"}, unit
    # Asking for the events starts it again through the socket: the stop is the record before.
    assert [e["type"] for e in machine.events()[-2:]] == ["daemon_stopped", "daemon_started"]


def test_kill_9_is_restarted_by_systemd(machine: Machine) -> None:
    machine.root_sh("systemctl start obsd.service")
    killed = machine.main_pid()
    restarts = int(machine.unit("NRestarts")["NRestarts"])
    machine.root_sh(f"kill -9 {killed}")
    wait_until(
        lambda: (
            machine.main_pid() not in (0, killed)
            and machine.unit("ActiveState")["ActiveState"] == "active"
        ),
        30,
        "the restart after kill -9",
    )
    assert int(machine.unit("NRestarts")["NRestarts"]) == restarts + 1
    assert machine.obsctl("ping") == {"pong": True}
    killed_start, restart = machine.events()[-2:]
    # The killed process recorded no daemon_stopped; the new one started on its log.
    assert killed_start["type"] == "daemon_started" and killed_start["payload"]["pid"] == killed
    assert restart["type"] == "daemon_started" and restart["payload"]["pid"] == machine.main_pid()


def test_a_reboot_resumes_a_scheduled_run_and_fires_it(machine: Machine) -> None:
    with registration_day(machine, REBOOT_OPENING_IN_S) as sim:
        # This time the token comes from the unit's credential, as the guide's other way.
        token = machine.tokens[-1]
        machine.obsctl("configure", "--clear-token")
        machine.root_sh("umask 077; cat > /etc/obsd/obs-token", stdin=token)
        machine.root_sh("systemctl restart obsd.service")
        assert machine.obsctl("config")["token"]["source"] == "credential"
        run_id = machine.obsctl("start")["run_id"]
        wait_for_phase(machine, run_id, "waiting", 60)
        machine.reboot()
        remaining_s = (opening_ns(sim) - sim.true_time_ns()) / NS
        assert remaining_s > 0, "the reboot took the run past its opening: lengthen the wait"
        wait_for_phase(machine, run_id, "done", remaining_s + SETTLE_S)
        assert_fired_once_on_time(sim)
        run = machine.obsctl("run", run_id)
        assert run["resumes"] == 1, run
        kinds = [
            e["type"] for e in machine.events() if e.get("payload", {}).get("run_id") == run_id
        ]
        assert "run_interrupted" in kinds and "run_resumed" in kinds, kinds


# Two students sharing the VPS, each with the guide's own commands; their openings differ.
STUDENTS: Final = {"alice": 70.0, "bob": 85.0}


def test_two_students_on_one_vps_fire_on_their_own_targets_and_keep_their_tokens(
    machine: Machine,
) -> None:
    template, per_student = blocks("### Several students on one VPS", "## 3. First configuration")
    machine.container.run(template, user=USER)
    for name in STUDENTS:
        machine.root_sh(f"useradd --create-home --shell /bin/sh {name}")
        # The guide adds bob; another student is the same block with the other name.
        machine.container.run(per_student.replace("bob", name), user=USER)
    with ExitStack() as days:
        sims = {
            name: days.enter_context(registration_day(machine, opening_in_s, name, name))
            for name, opening_in_s in STUDENTS.items()
        }
        runs = {name: machine.obsctl("start", user=name, instance=name)["run_id"] for name in sims}
        for name, sim in sims.items():
            remaining_s = (opening_ns(sim) - sim.true_time_ns()) / NS
            wait_for_phase(
                machine, runs[name], "done", remaining_s + SETTLE_S, user=name, instance=name
            )
            assert_fired_once_on_time(sim)
    alice = machine.container.run("obsctl -i bob status", user="alice", check=False)
    assert alice.returncode == 1 and "no permission to connect to /run/obsd-bob.sock" in (
        alice.stderr
    ), alice.stderr
    status = machine.container.run("obsctl -i alice status", user="alice").stdout
    assert re.match(r"daemon +obsd \S+ \(instance alice\), pid ", status), status
    for reader, owner in (("alice", "bob"), ("bob", "alice")):
        for secret in (
            f"/var/lib/obsd-{owner}/obs-token",
            f"/run/credentials/obsd@{owner}.service/obs-token",
        ):
            # The owner's daemon user can read it: the path is right, and the refusal is real.
            machine.root_sh(f"runuser -u obsd-{owner} -- test -r {secret}")
            for user in (f"obsd-{reader}", reader):
                attempt = machine.container.run(f"runuser -u {user} -- cat {secret}", check=False)
                assert attempt.returncode != 0 and "Permission denied" in attempt.stderr, (
                    user,
                    secret,
                    attempt,
                )


# The operator's notification command: it keeps what it is handed where the unit lets obsd write.
NOTIFY_SCRIPT: Final = """#!/bin/sh
cat >> /var/lib/obsd/notices.jsonl
"""


def test_notifications_from_the_guide_s_drop_in_reach_a_command_and_a_url(
    machine: Machine,
) -> None:
    install_extra, setup = blocks("### Being told: notifications", "## 6. Reading a run report")
    machine.container.run(install_extra, user=USER)
    machine.root_sh("install -m 0755 /dev/stdin /usr/local/bin/obsd-notify", stdin=NOTIFY_SCRIPT)
    hook = secrets.token_hex(8)  # stands in for the secret part of a real URL
    with receiver() as http:
        # The guide's block reads the URL file from the terminal: here, from stdin.
        machine.container.run(setup, user=USER, stdin=http.url("json", hook) + "\n")
        assert machine.root_sh("test -e /tmp/notify-urls || echo gone").strip() == "gone"
        with registration_day(machine, opening_in_s=3600):
            run_id = machine.obsctl("start")["run_id"]
            machine.obsctl("cancel")
            wait_until(
                lambda: any(
                    body["title"].endswith("cancelled while waiting")
                    or body["title"].endswith("cancelled while calibrating")
                    for _, body in http.posts
                ),
                SETTLE_S,
                "the cancel notice at the URL",
            )
        notices = [
            json.loads(line)
            for line in machine.root_sh("cat /var/lib/obsd/notices.jsonl").splitlines()
        ]
    assert {path for path, _ in http.posts} == {f"/{hook}"}
    cancelled = [n for n in notices if n["kind"] == "run_cancelled"]
    assert len(cancelled) == 1 and cancelled[0]["run_id"] == run_id
    journal = machine.root_sh("journalctl -o export --no-pager -u obsd.service")
    assert hook not in journal, "a notification URL reached the journal"


def test_the_login_from_an_encrypted_credential_works_and_its_password_is_nowhere(
    machine: Machine,
) -> None:
    _, encrypted = blocks("### Letting obsd log in itself", "### Several students on one VPS")
    password = "Ayşe " + secrets.token_hex(6)
    student = Student(
        subject=STUDENT,
        registered=["20456"],
        login=StudentLogin(username="ayse", password=password),
    )
    with Simulator(sim_config(3600, students=[student])).serve_in_thread() as sim:
        machine.obsctl("configure", f"--obs-base-url {sim.base_url}")
        # The guide's block reads the credential file from the terminal: here, from stdin.
        machine.container.run(encrypted, user=USER, stdin=f"ayse\n{password}\n")
        config = machine.obsctl("config")
        check = machine.obsctl("login", "--check")
        cookies = sim.cookies_issued()
    assert config["login"] == {
        "configured": True,
        "username": "ayse",
        "identity": None,
        "source": "credential",
        "problem": None,
    }
    assert check["ok"] is True and check["http_status"] == 200, check
    encrypted_file = machine.root_sh("cat /etc/obsd/itu-login.cred")
    journal = machine.root_sh("journalctl -o export --no-pager")
    assert cookies, "the check logged in"
    for place in (encrypted_file, journal):
        assert password not in place
        assert not [cookie for cookie in cookies if cookie in place], "a session cookie leaked"
    assert machine.root_sh("test -e /tmp/itu-login || echo gone").strip() == "gone"


def test_no_token_in_any_journal_line(machine: Machine) -> None:
    # Every field of every entry, of both boots: obsd's own lines, systemd's, sudo's.
    journal = machine.root_sh("journalctl -o export --no-pager")
    assert len(set(re.findall(r"^_BOOT_ID=(\w+)$", journal, re.MULTILINE))) == 2
    assert "MESSAGE=INFO obsd: resuming run " in journal  # the daemons' lines are there
    assert len(machine.tokens) == 3 + len(STUDENTS)
    for token in machine.tokens:
        signature = token.rsplit(".", 1)[-1]
        assert token not in journal and signature not in journal
