"""`obsctl configure` against a real daemon accepts exactly what docs/protocol.md §6 allows,
at and around every bound (tests/contract.py), and refuses the rest in one line: exit 1 when
obsctl itself cannot read the value, 2 when the daemon refuses it."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obsctl.cli import EXIT_CLIENT_ERROR, EXIT_DAEMON_REFUSED, EXIT_OK, main
from tests import contract
from tests.conftest import DaemonProcess

EXAMPLES = 25


def obsctl(daemon: DaemonProcess, *args: str) -> tuple[int, str, str]:
    """Run obsctl in this process; return its exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(["--socket", str(daemon.socket), *args])
        except SystemExit as exc:  # argparse's way out
            status = int(exc.code or 0)
    return status, out.getvalue(), err.getvalue()


def stored(daemon: DaemonProcess) -> dict[str, Any]:
    status, out, _ = obsctl(daemon, "--json", "config")
    assert status == EXIT_OK
    return dict(json.loads(out)["data"]["config"])


def check(daemon: DaemonProcess, argv: list[str], accepted: bool) -> dict[str, Any]:
    """Configure with `argv`; it must succeed exactly when `accepted`. Return the config."""
    before = stored(daemon)
    status, _, err = obsctl(daemon, "configure", *argv)
    if accepted:
        assert status == EXIT_OK, err
        return stored(daemon)
    assert status in (EXIT_CLIENT_ERROR, EXIT_DAEMON_REFUSED), (status, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("obsctl"), err
    assert stored(daemon) == before, "a refusal changes nothing"
    return before


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def as_number(field: contract.NumberField, text: str) -> float | int | None:
    """What obsctl reads from `text` (Python's int/float, finite only), or None."""
    try:
        value = int(text) if field.integer else float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


number_texts = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "", "abc", "1e999", "3,5", "0x10", " 5"]),
)


@settings(max_examples=EXAMPLES)
@given(st.data())
@pytest.mark.parametrize("field", contract.NUMBER_FIELDS, ids=lambda f: f.name)
def test_numbers(
    module_daemon: DaemonProcess, field: contract.NumberField, data: st.DataObject
) -> None:
    value = data.draw(contract.numbers_around(field) | number_texts)
    text = value if isinstance(value, str) else repr(value)
    number = as_number(field, text)
    config = check(
        module_daemon, [f"{flag(field.name)}={text}"], number is not None and field.accepts(number)
    )
    if number is not None and field.accepts(number):
        assert config[field.name] == field.stored(number)


def crn_argv(plan: dict[str, Any]) -> list[str]:
    backup = [f"{key}={value}" for key, value in plan["backup"].items()] or ["none"]
    return [
        "--ecrn",
        *plan["ecrn"],
        "--scrn",
        *plan["scrn"],
        *(arg for pair in backup for arg in ("--backup", pair)),
    ]


@settings(max_examples=EXAMPLES)
@given(contract.crn_plans())
def test_crn_lists(module_daemon: DaemonProcess, plan: dict[str, Any]) -> None:
    # obsctl splits `--backup A=B` at the first '='; a key holding one is not a CRN anyway.
    accepted = contract.crn_lists_ok(plan["ecrn"], plan["scrn"], plan["backup"]) and not any(
        item.startswith("-") for item in [*plan["ecrn"], *plan["scrn"]]
    )
    config = check(module_daemon, crn_argv(plan), accepted)
    if accepted:
        assert {k: config[k] for k in plan} == plan


@settings(max_examples=EXAMPLES)
@given(contract.base_urls())
def test_base_url(module_daemon: DaemonProcess, text: str) -> None:
    expected = contract.normalized_url(text)
    config = check(module_daemon, [f"--obs-base-url={text}"], expected is not None)
    if expected is not None:
        assert config["obs_base_url"] == expected


@settings(max_examples=EXAMPLES)
@given(contract.ntp_server_lists)
def test_ntp_servers(module_daemon: DaemonProcess, servers: list[str]) -> None:
    accepted = contract.ntp_servers_ok(servers)
    config = check(module_daemon, [f"--ntp-server={server}" for server in servers], accepted)
    if accepted:
        assert config["ntp_servers"] == servers


@settings(max_examples=EXAMPLES)
@given(contract.targets(datetime.now(UTC)))
def test_target(module_daemon: DaemonProcess, text: str) -> None:
    instant = contract.target_instant(text, datetime.now(UTC))
    config = check(
        module_daemon, [f"--target={text}"], contract.hhmmss_ok(text) or instant is not None
    )
    if instant is not None:
        assert datetime.fromisoformat(config["target"]) == instant


@pytest.mark.parametrize("value", [True, False])
def test_retry_full(module_daemon: DaemonProcess, value: bool) -> None:
    config = check(module_daemon, ["--retry-full" if value else "--no-retry-full"], True)
    assert config["retry_full"] is value


def test_a_refusal_names_the_option_that_was_typed(module_daemon: DaemonProcess) -> None:
    status, _, err = obsctl(module_daemon, "configure", "--ntp-server", "pool.ntp.org:0")
    assert status == EXIT_DAEMON_REFUSED
    assert err == (
        "obsctl: VALIDATION_ERROR: port must be 1-65535, got '0' - at "
        "`$.config.ntp_servers[0]` (--ntp-server)\n"
    )
