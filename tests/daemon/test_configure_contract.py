"""`configure` on a real daemon accepts exactly what docs/protocol.md §6 allows, at and around
every bound (tests/contract.py), and a refused patch changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obsctl.client import Client
from tests import contract
from tests.conftest import DaemonProcess

# Each example is a round trip and, when accepted, a durable append: a few ms each.
EXAMPLES = 100


@pytest.fixture(scope="module")
def client(module_daemon: DaemonProcess) -> Iterator[Client]:
    with module_daemon.client() as connection:
        yield connection


def configure(client: Client, fields: dict[str, Any]) -> dict[str, Any] | str:
    """The stored config after `configure`, or the error message (config then unchanged)."""
    before = client.request("config")["data"]["config"]
    response = client.request("configure", config=fields)
    if response["success"]:
        return dict(response["data"]["config"])
    assert response["error"]["code"] == "VALIDATION_ERROR", response
    assert client.request("config")["data"]["config"] == before, "a refusal changes nothing"
    return str(response["error"]["message"])


@settings(max_examples=EXAMPLES)
@given(st.data())
@pytest.mark.parametrize("field", contract.NUMBER_FIELDS, ids=lambda f: f.name)
def test_numbers(client: Client, field: contract.NumberField, data: st.DataObject) -> None:
    value = data.draw(contract.numbers_around(field))
    result = configure(client, {field.name: value})
    if field.accepts(value):
        assert isinstance(result, dict), result
        assert result[field.name] == field.stored(value)
    else:
        assert isinstance(result, str) and f"$.config.{field.name}" in result


@settings(max_examples=EXAMPLES)
@given(contract.crn_plans())
def test_crn_lists(client: Client, plan: dict[str, Any]) -> None:
    result = configure(client, plan)
    if contract.crn_lists_ok(plan["ecrn"], plan["scrn"], plan["backup"]):
        assert isinstance(result, dict), result
        assert {k: result[k] for k in plan} == plan
    else:
        assert isinstance(result, str) and "$.config" in result


@settings(max_examples=EXAMPLES)
@given(contract.base_urls())
def test_base_url(client: Client, text: str) -> None:
    result = configure(client, {"obs_base_url": text})
    expected = contract.normalized_url(text)
    if expected is None:
        assert isinstance(result, str) and "$.config.obs_base_url" in result
    else:
        assert isinstance(result, dict) and result["obs_base_url"] == expected, result


@settings(max_examples=EXAMPLES)
@given(contract.ntp_server_lists)
def test_ntp_servers(client: Client, servers: list[str]) -> None:
    result = configure(client, {"ntp_servers": servers})
    if contract.ntp_servers_ok(servers):
        assert isinstance(result, dict) and result["ntp_servers"] == servers, result
    else:
        assert isinstance(result, str) and "$.config.ntp_servers" in result


@settings(max_examples=EXAMPLES)
@given(contract.targets(datetime.now(UTC)))
def test_target(client: Client, text: str) -> None:
    result = configure(client, {"target": text})
    instant = contract.target_instant(text, datetime.now(UTC))
    if contract.hhmmss_ok(text) or instant is not None:
        assert isinstance(result, dict), result
        if instant is not None:
            assert datetime.fromisoformat(result["target"]) == instant
    else:
        assert isinstance(result, str) and "$.config.target" in result


@given(st.booleans() | st.none() | st.integers(-1, 2) | st.text(max_size=5))
@settings(max_examples=20)
def test_retry_full(client: Client, value: object) -> None:
    result = configure(client, {"retry_full": value})
    if isinstance(value, bool):
        assert isinstance(result, dict) and result["retry_full"] is value
    else:
        assert isinstance(result, str) and "$.config.retry_full" in result
