"""docs/operations.md uses only commands obsctl has, and explains every error code."""

from __future__ import annotations

import re
import shlex

import pytest

from obsctl.cli import _parser
from obsd.core.protocol import ErrorCode
from tests.systemd.guide import FENCED, GUIDE

INLINE = re.compile(r"`((?:sudo )?obsctl [^`]*)`")
# Placeholders the guide writes for values the reader fills in.
PLACEHOLDERS = {"...": "21234", "…": "", "SEQ": "42", "NAME": "bob"}


def _obsctl_lines() -> list[str]:
    """Every obsctl command in the guide (shell blocks and inline code), minus `sudo`."""
    text = GUIDE.read_text()
    lines = [
        line.split("#", 1)[0]
        for block in FENCED.findall(text)
        # A line ending in a backslash continues on the next.
        for line in block.replace("\\\n", " ").splitlines()
    ] + INLINE.findall(text)
    commands = []
    for line in lines:
        for part in line.split("&&"):
            words = shlex.split(part)
            if words[:1] == ["sudo"]:
                words = words[1:]
            # `sudo obsctl …` stands for any command, not for one to check.
            if words[:1] == ["obsctl"] and words[1:] != ["…"]:
                commands.append(shlex.join(words[1:]))
    return sorted(set(commands))


def test_the_guide_shows_obsctl_commands() -> None:
    assert len(_obsctl_lines()) > 15


@pytest.mark.parametrize("command", _obsctl_lines())
def test_every_obsctl_command_in_the_guide_parses(command: str) -> None:
    for placeholder, example in PLACEHOLDERS.items():
        command = command.replace(placeholder, example)
    arguments = shlex.split(command)
    try:
        _parser().parse_args(arguments)
    except SystemExit as exc:
        pytest.fail(f"`obsctl {command}` does not parse (exit {exc.code})")


def test_every_error_code_is_explained() -> None:
    rows = re.findall(r"^\| `([A-Z_]+)` \|", GUIDE.read_text(), re.MULTILINE)
    assert set(rows) >= {code.value for code in ErrorCode}
