"""Two daemons named by OBSD_INSTANCE on one machine, and `obsctl -i NAME` reaching each one."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from obsctl.client import Client, ClientError
from tests.conftest import STARTUP_TIMEOUT_S, script_path, wait_until

NAMES = ("alice", "bob")


def environment(short_dir: Path, **extra: str) -> dict[str, str]:
    """The user's dirs inside `short_dir`, and nothing that names a socket."""
    runtime = short_dir / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)  # platformdirs ignores a runtime dir others can read
    env = {k: v for k, v in os.environ.items() if k not in ("OBSD_SOCKET", "OBSD_INSTANCE")}
    return env | {"XDG_RUNTIME_DIR": str(runtime), "XDG_STATE_HOME": str(short_dir)} | extra


def obsctl(short_dir: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script_path("obsctl"), *argv],
        env=environment(short_dir, **env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def instances(short_dir: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """`obsd run` twice, told only its instance name."""
    started = {
        name: subprocess.Popen(
            [sys.executable, "-m", "obsd"],
            env=environment(short_dir, OBSD_INSTANCE=name),
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in NAMES
    }

    def greets(name: str) -> bool:
        try:
            with Client(short_dir / "run" / f"obsd-{name}" / "obsd.sock", timeout=5):
                return True
        except ClientError:
            return False

    try:
        for name in NAMES:
            wait_until(lambda name=name: greets(name), STARTUP_TIMEOUT_S, f"instance {name}")
        yield started
    finally:
        for process in started.values():
            process.terminate()
        assert all(process.wait(timeout=STARTUP_TIMEOUT_S) == 0 for process in started.values())


def test_each_instance_has_its_own_socket_and_state(
    short_dir: Path, instances: dict[str, subprocess.Popen[bytes]]
) -> None:
    for name, process in instances.items():
        by_option = obsctl(short_dir, "-i", name, "status")
        by_environment = obsctl(short_dir, "status", OBSD_INSTANCE=name)
        for result in (by_option, by_environment):
            assert result.returncode == 0, result.stderr
            first = result.stdout.splitlines()[0]
            pattern = rf"daemon +obsd \S+ \(instance {name}\), pid {process.pid}, up \d+ s"
            assert re.fullmatch(pattern, first), first
        status = json.loads(obsctl(short_dir, "-i", name, "--json", "status").stdout)
        assert status["data"]["log"]["directory"] == str(short_dir / f"obsd-{name}" / "log")
        assert status["data"]["daemon"]["instance"] == name


def test_a_stopped_instance_names_its_service(short_dir: Path) -> None:
    result = obsctl(short_dir, "-i", "carol", "ping")
    assert result.returncode == 1
    assert result.stderr.startswith("obsctl: obsd@carol is not running: "), result.stderr


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["-i", "Carol", "ping"], {}, "argument -i/--instance: instance name 'Carol' is not "),
        (["--socket", "/x.sock", "-i", "carol", "ping"], {}, "give --socket or --instance"),
        (["ping"], {"OBSD_INSTANCE": "Carol"}, "$OBSD_INSTANCE: instance name 'Carol' is not "),
    ],
    ids=["bad-option", "both", "bad-environment"],
)
def test_a_bad_instance_is_one_line_saying_what_to_do(
    short_dir: Path, argv: list[str], env: dict[str, str], message: str
) -> None:
    result = obsctl(short_dir, *argv, **env)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr, result.stderr
