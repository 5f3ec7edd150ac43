"""The README's first command works: `obsctl demo` runs a whole registration and cleans up."""

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_the_demo_registers_on_time_and_cleans_up() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "obsctl", "demo"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "after the opening (safety buffer 1 ms)" in result.stdout
    # The busy opening: the course last in the list lost its seats to the queue.
    assert "21345 add  full         VAL06: quota is full" in result.stdout
    assert "Order is priority: put the most contested course first." in result.stdout
    assert result.stdout.rstrip().endswith(
        "Demo done: the daemon stopped cleanly and its temporary files are gone."
    )
    assert " -" not in result.stdout.split("The simulator saw the first POST ")[1][:2], (
        "the first POST was not early"
    )
