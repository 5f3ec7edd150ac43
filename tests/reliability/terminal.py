"""Printing a suite's figures (faults injected, runs played) past pytest's output capture."""

from __future__ import annotations

import pytest


def show(config: pytest.Config, line: str) -> None:
    """Write `line` to the terminal even from a fixture's teardown, where output is captured."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"\n{line}")
