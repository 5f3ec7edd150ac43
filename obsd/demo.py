"""`obsd demo`: a daemon on temporary paths, driven by obsctl, so a newcomer sees it work."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from obsctl.cli import main as obsctl
from obsctl.client import Client, ClientError

# How long the daemon may take to come up on a slow machine before the demo gives up.
STARTUP_TIMEOUT_S = 20.0


def _wait_for(socket_path: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("obsd demo: the daemon exited during start-up")
        try:
            Client(socket_path, timeout=5).close()
            return
        except ClientError:
            time.sleep(0.05)
    raise SystemExit("obsd demo: the daemon did not start in time")


def _step(title: str, *args: str) -> None:
    print(f"\n$ obsctl {' '.join(args)}    # {title}", flush=True)
    obsctl(list(args))
    sys.stdout.flush()


def run_demo() -> int:
    """Start a throw-away daemon, configure it, show status and the event log, stop it."""
    workdir = Path(tempfile.mkdtemp(prefix="obsd-demo-"))
    socket_path = workdir / "obsd.sock"
    daemon_log = (workdir / "obsd.log").open("wb")
    daemon = subprocess.Popen([sys.executable, "-m", "obsd", "run", "--socket", str(socket_path),
                               "--state-dir", str(workdir / "state")], stderr=daemon_log)
    try:
        _wait_for(socket_path, daemon)
        sock = ["--socket", str(socket_path)]
        _step("is it up?", *sock, "status")
        _step("plan: add two courses, drop one, at 14:00:00 Istanbul time", *sock, "configure",
              "--ecrn", "21234", "21345", "--scrn", "20456", "--target", "14:00:00")
        _step("a bad CRN is refused, naming the field", *sock, "configure", "--ecrn", "2123")
        _step("every change is an event in the durable log", *sock, "tail", "--after", "0")
        _step("health of the log store and disk", *sock, "health")
    finally:
        daemon.terminate()
        status = daemon.wait(timeout=STARTUP_TIMEOUT_S)
        daemon_log.close()
        if status != 0:
            sys.stderr.write((workdir / "obsd.log").read_text(errors="replace"))
        shutil.rmtree(workdir, ignore_errors=True)
    print("\nDemo done: the daemon stopped cleanly and its temporary files are gone.")
    return 0
