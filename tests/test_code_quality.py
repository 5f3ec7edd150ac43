"""The code stays ruff-clean and passes mypy in strict mode, with the pinned tool versions."""

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "tests" / "constraints.txt"
# Installed by venv itself, or the project under test: not part of the pinned tool chain.
UNPINNED = {"pip", "setuptools", "wheel", "obsd"}


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, str]:
    lines = [line.strip() for line in CONSTRAINTS.read_text().splitlines()]
    pairs = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {normalized(name): version for name, version in pairs}


def test_ruff_finds_nothing() -> None:
    result = run("ruff", "check", "obsd", "obsctl", "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_layout_is_the_formatters() -> None:
    result = run("ruff", "format", "--check", "obsd", "obsctl", "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_nothing() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_installed_package_is_the_pinned_version() -> None:
    # A tool that moved on (a new mypy, a new msgspec's stubs) could change the verdict.
    pinned = pins()
    installed = {normalized(d.metadata["Name"]): d.version for d in metadata.distributions()}
    wrong = {
        name: (version, pinned.get(name))
        for name, version in installed.items()
        if name not in UNPINNED and pinned.get(name) != version
    }
    assert not wrong, (
        f"installed (version, pinned): {wrong}; install with "
        "`pip install -c tests/constraints.txt -e '.[test]'`, or move the pins "
        "on purpose with .ci/update-constraints"
    )


def test_the_readme_and_ci_install_with_the_pins() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^python3 -m venv .*$", readme, re.MULTILINE)
    assert len(commands) == 2, "the README starts with the demo command and the test command"
    assert all("-c tests/constraints.txt" in command for command in commands)
    ci = (ROOT / ".ci" / "run").read_text().replace(" -q", "")
    assert commands[1] in ci, "CI runs the README's test command"
