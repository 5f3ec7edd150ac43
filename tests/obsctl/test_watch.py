"""`obsctl watch` as a person sees it: a real terminal (tmux) through a whole simulated run,
Ctrl-C, a daemon that goes away; and into a pipe, the lines tail -f prints."""

from __future__ import annotations

import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import POLL_S, DaemonProcess
from tests.harness import STUDENT, registration

# Generous bounds on what takes a second or two: a loaded CI machine must not fail them.
SCREEN_TIMEOUT_S = 30.0
EXITED = "watch exited with "


def obsctl_argv(socket: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "obsctl", "--socket", str(socket), *args]


def require_tmux() -> str:
    """tmux's path; in CI a missing tmux fails the test, elsewhere it skips it."""
    path = shutil.which("tmux")
    if path is not None:
        return path
    message = "tmux not found: install Debian's tmux package (.ci/run does this)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class Terminal:
    """An 80x24 tmux pane on a server of its own: keys in, the screen's text out."""

    def __init__(self, tmux: str, directory: Path) -> None:
        # A socket in the test's own directory: a server of its own, and nothing left behind.
        self._base = [tmux, "-S", str(directory / "tmux.sock"), "-f"]
        config = directory / "tmux.conf"
        # bash runs the command: its line after the watch shows on the screen the watch left,
        # with the exit status. (bash goes on after a Ctrl-C that its child handled.)
        config.write_text(f"set -g default-shell {shutil.which('bash')}\n")
        self._base.append(str(config))

    def tmux(self, *args: str) -> str:
        result = subprocess.run(
            [*self._base, *args], capture_output=True, text=True, timeout=SCREEN_TIMEOUT_S
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def start(self, argv: list[str]) -> None:
        command = f'{shlex.join(argv)}; echo "{EXITED}$?"; exec sleep 600'
        self.tmux("new-session", "-d", "-x", "80", "-y", "24", "-s", "watch", command)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "watch")

    def until(self, condition: Callable[[str], object], what: str) -> str:
        """The screen once `condition(screen)` holds; fail, showing the screen, if it never does."""
        deadline = time.monotonic() + SCREEN_TIMEOUT_S
        while not condition(text := self.screen()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {SCREEN_TIMEOUT_S} s; screen:\n{text}")
            time.sleep(POLL_S)
        return text

    def kill(self) -> None:
        subprocess.run([*self._base, "kill-server"], capture_output=True, timeout=30)


@contextmanager
def terminal(directory: Path) -> Iterator[Terminal]:
    """A tmux server that is gone at the end, whatever happened."""
    term = Terminal(require_tmux(), directory)
    try:
        yield term
    finally:
        term.kill()


def lines_of(screen: str) -> list[str]:
    return [line.rstrip() for line in screen.splitlines()]


def plan_row(screen: str, crn: str) -> str:
    (row,) = [
        line for line in lines_of(screen) if re.match(rf"^(plan)? +\d+ (add|drop) +{crn} ", line)
    ]
    return row


def assert_restored(term: Terminal, screen: str, status: int) -> None:
    """The watch ended with `status`, and left the terminal as bash expects it."""
    assert f"{EXITED}{status}" in screen
    assert "Traceback" not in screen
    # The alternate screen is left: the shell's own screen is back, without the view on it.
    assert "POSTs" not in screen and "phase   " not in screen
    assert term.tmux("display-message", "-p", "-t", "watch", "#{alternate_on}").strip() == "0"
    assert term.tmux("display-message", "-p", "-t", "watch", "#{cursor_flag}").strip() == "1"


def test_a_whole_run_on_screen_then_ctrl_c(short_dir: Path) -> None:
    with registration(short_dir, opening_in_s=5) as reg, terminal(short_dir) as term:
        term.start(obsctl_argv(reg.daemon.socket, "watch"))
        idle = term.until(lambda s: "no run yet" in s, "the idle screen")
        assert "phase   idle" in idle
        reg.plan(ecrn=["21234", "24010"], scrn=["20456"])
        reg.start()

        waiting = term.until(lambda s: "waiting, fires in" in s, "the wait")
        phase = next(line for line in lines_of(waiting) if line.startswith("phase"))
        assert re.search(r"fires in 00:00:0\d\.\d at \d\d:\d\d:\d\d\.\d{3} NTP time", phase), phase
        assert "time    agreed: true time is" in waiting
        assert "chosen " in waiting
        rows = [plan_row(waiting, crn) for crn in ("21234", "24010", "20456")]
        assert [lines_of(waiting).index(row) for row in rows] == sorted(
            lines_of(waiting).index(row) for row in rows
        ), "the plan in the order it is sent"
        assert rows[0].startswith("plan     1 add  21234  pending")
        assert rows[2].startswith("         3 drop 20456  pending")
        assert "POSTs   0 of 60" in waiting

        done = term.until(lambda s: "done: every CRN has a final result" in s, "the end")
        assert plan_row(done, "21234").endswith("21234  success      added")
        assert plan_row(done, "24010").endswith("24010  success      added")
        assert plan_row(done, "20456").endswith("20456  success      dropped")
        assert "POSTs   1 of 60 (max_attempts); budget 1 of 30 per 360 s" in done
        assert len(reg.posts()) == 1
        for screen in (idle, waiting, done):
            assert len(lines_of(screen)) <= 24 and all(len(line) <= 80 for line in lines_of(screen))
            assert reg.sim.token(STUDENT) not in screen

        term.tmux("send-keys", "-t", "watch", "C-c")
        after = term.until(lambda s: EXITED in s, "the exit")
        assert_restored(term, after, 0)


def test_the_daemon_going_away_ends_the_watch_with_one_line(
    daemon: DaemonProcess, short_dir: Path
) -> None:
    with terminal(short_dir) as term:
        term.start(obsctl_argv(daemon.socket, "watch"))
        term.until(lambda s: "no run yet" in s, "the idle screen")
        assert daemon.stop() == 0, daemon.stderr()
        after = term.until(lambda s: EXITED in s, "the exit")
        assert_restored(term, after, 1)
        assert "obsctl: obsd closed the connection" in lines_of(after)


def read_until(process: subprocess.Popen[bytes], marker: bytes, timeout_s: float) -> bytes:
    """What `process` printed up to the line with `marker`; fail at the deadline."""
    assert process.stdout is not None
    deadline, data = time.monotonic() + timeout_s, b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while marker not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise AssertionError(f"no {marker!r} within {timeout_s} s; got {data!r}")
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                raise AssertionError(f"watch ended (exit {process.wait()}) before {marker!r}")
            data += chunk
    return data


def test_into_a_pipe_it_prints_the_lines_of_tail_from_the_runs_start(short_dir: Path) -> None:
    with registration(short_dir, opening_in_s=3) as reg:
        reg.plan(ecrn=["21234"])
        reg.start()
        events = reg.wait_for("done", timeout_s=SCREEN_TIMEOUT_S)
        first = next(e["seq"] for e in events if e["type"] == "run_created")
        tail = subprocess.run(
            obsctl_argv(reg.daemon.socket, "tail", "--after", str(first - 1)),
            capture_output=True,
            text=True,
            timeout=SCREEN_TIMEOUT_S,
        )
        assert tail.returncode == 0, tail.stderr
        watch = subprocess.Popen(
            obsctl_argv(reg.daemon.socket, "watch"), stdout=subprocess.PIPE, bufsize=0
        )
        try:
            printed = read_until(watch, b"--- following live events", SCREEN_TIMEOUT_S)
            watch.send_signal(signal.SIGINT)
            status = watch.wait(timeout=SCREEN_TIMEOUT_S)
        finally:
            if watch.poll() is None:
                watch.kill()
                watch.wait()
    lines = printed.decode().splitlines()
    assert lines == [*tail.stdout.splitlines(), "--- following live events (Ctrl-C to stop) ---"]
    assert "\x1b" not in printed.decode(), "no screen control into a pipe"
    assert any(" done " in line and "every CRN has a final result" in line for line in lines)
    assert status == 0
