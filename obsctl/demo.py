"""`obsctl demo`: a full registration against the built-in simulator, in about 20 seconds.

The simulated OBS runs with its clock 2.5 s away from this machine's, so only an NTP-driven
shot lands on time; the daemon runs on temporary paths and is driven with obsctl.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import msgspec

from obsctl import event_view, report
from obsctl.client import Client, ClientError
from obsd.core.config import Config
from obsd.core.replies import RunReply
from obsd.sim import Simulator, default_config
from obsd.sim.config import DEFAULT_STUDENT

# How long the daemon may take to come up on a slow machine before the demo gives up.
STARTUP_TIMEOUT_S: Final = 20.0
# No obsctl step of the demo takes long; past this it is stuck.
STEP_TIMEOUT_S: Final = 30.0
# The opening is this far ahead of the demo's start: the set-up steps take 2-3 s, calibration
# about 1 s, and the countdown should still be visible.
OPENING_IN_S: Final = 14.0
# The simulated OBS's true time differs from this machine's clock by this much.
CLOCK_OFFSET_S: Final = 2.5
# The run ends well before this, even with retries; past it the demo stops waiting.
RUN_TIMEOUT_S: Final = 60.0
# The plan: two adds that work, one full course with a backup, two courses that clash in
# time, one with an unmet prerequisite, one last in the list that others fill while OBS works
# through the ones before it (the opening is busy: 0.17-1.1 s per CRN), and a drop.
LOST_TO_THE_QUEUE: Final = "21345"
FILLS_AFTER_S: Final = 1.0
PLAN: Final = (
    "--ecrn",
    "21234",
    "22001",
    "24010",
    "24020",
    "23100",
    LOST_TO_THE_QUEUE,
    "--scrn",
    "20456",
    "--backup",
    "22001=22002",
)


def _wait_for(socket_path: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("obsctl demo: the daemon exited during start-up")
        try:
            Client(socket_path, timeout=5).close()
            return
        except ClientError:
            time.sleep(0.05)
    raise SystemExit("obsctl demo: the daemon did not start in time")


def _step(title: str, *args: str, stdin_text: str | None = None) -> None:
    """Run one obsctl command as a person would type it, showing it first."""
    print(f"\n$ obsctl {' '.join(args)}    # {title}", flush=True)
    subprocess.run(
        [sys.executable, "-m", "obsctl", *args],
        input=stdin_text,
        text=True,
        check=False,
        timeout=STEP_TIMEOUT_S,
    )


def _follow(socket_path: Path) -> str | None:
    """Print the run's events as `obsctl tail -f` would, until it ends; return its id."""
    with Client(socket_path, timeout=RUN_TIMEOUT_S) as client:
        client.request("tail", follow=True)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        for line in client.stream():
            event = msgspec.json.decode(line)
            if "seq" in event and event_view.worth_showing(event):
                print(event_view.event_line(event), flush=True)
            if event.get("type") == "done" or time.monotonic() > deadline:
                return str(event.get("payload", {}).get("run_id"))
    return None


def run_demo() -> int:
    """Simulator, daemon, plan, run, report; everything on loopback and temporary paths."""
    workdir = Path(tempfile.mkdtemp(prefix="obsd-demo-"))
    socket_path = workdir / "obsd.sock"
    sock = ("--socket", str(socket_path))
    daemon_log = (workdir / "obsd.log").open("wb")
    opening_ns = time.time_ns() + int((CLOCK_OFFSET_S + OPENING_IN_S) * 1e9)
    # The simulator's default pace is a busy opening's.
    busy = default_config()
    courses = [
        msgspec.structs.replace(c, fills_after_s=FILLS_AFTER_S) if c.crn == LOST_TO_THE_QUEUE else c
        for c in busy.courses
    ]
    simulator = Simulator(
        msgspec.structs.replace(
            busy,
            clock_offset_s=CLOCK_OFFSET_S,
            opening_at=opening_ns / 1e9,
            courses=courses,
        )
    )
    daemon = None
    try:
        with simulator.serve_in_thread() as sim:
            daemon = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "obsd",
                    "run",
                    "--socket",
                    str(socket_path),
                    "--state-dir",
                    str(workdir / "state"),
                ],
                stderr=daemon_log,
            )
            _wait_for(socket_path, daemon)
            target = datetime.fromtimestamp(opening_ns / 1e9, UTC).isoformat(
                timespec="milliseconds"
            )
            print(
                f"Simulated OBS at {sim.base_url}; its clock is {CLOCK_OFFSET_S:+} s from "
                f"this machine's; registration opens at {target} (its time)."
            )
            _step(
                "point obsd at the simulator and its NTP server",
                *sock,
                "configure",
                "--obs-base-url",
                sim.base_url,
                "--ntp-server",
                sim.ntp_server,
                "--target",
                target,
            )
            _step("the plan", *sock, "configure", *PLAN)
            _step(
                "the token, from standard input (never an argument)",
                *sock,
                "configure",
                "--token",
                "-",
                stdin_text=sim.token(DEFAULT_STUDENT),
            )
            _step("check the token with OBS's cheap GET", *sock, "test-token")
            _step("go", *sock, "start")
            print(f"\n$ obsctl {' '.join(sock)} tail -f    # until the run ends", flush=True)
            run_id = _follow(socket_path)
            if run_id:
                with Client(socket_path) as client:
                    detail = client.request("run", run_id=run_id)["data"]
                print("\n" + report.text(msgspec.convert(detail, RunReply)), flush=True)
            arrivals = [r for r in sim.requests() if r.method == "POST"]
            if arrivals:
                late_ms = (arrivals[0].arrival_ns - opening_ns) / 1e6
                print(
                    f"The simulator saw the first POST {late_ms:+.3f} ms after the opening "
                    f"(safety buffer {Config().safety_buffer * 1000:g} ms), and "
                    f"{len(arrivals)} POSTs in all."
                )
                print(
                    f"{LOST_TO_THE_QUEUE} was last of {PLAN.index('--scrn') - 1} courses: OBS "
                    "handled them one after another, and the other students had filled it "
                    f"{FILLS_AFTER_S:g} s after the opening, before its turn came. Order is "
                    "priority: put the most contested course first."
                )
    finally:
        if daemon is not None:
            daemon.terminate()
            status = daemon.wait(timeout=STARTUP_TIMEOUT_S)
            daemon_log.close()
            if status != 0:
                sys.stderr.write((workdir / "obsd.log").read_text(errors="replace"))
        shutil.rmtree(workdir, ignore_errors=True)
    print("Demo done: the daemon stopped cleanly and its temporary files are gone.")
    return 0
