"""Every configuration field at and around its documented bounds: decoding and `apply_patch`
accept exactly what docs/protocol.md §6 allows (tests/contract.py), and store it as shown."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obsd.core.config import Config, ConfigError, ConfigPatch, apply_patch
from obsd.core.protocol import ProtocolError, decode_request
from tests import contract

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
EXAMPLES = 150


def configure(fields: dict[str, Any]) -> Config | str:
    """The configuration a `configure` with `fields` leads to, or the refusal's message."""
    line = msgspec.json.encode({"id": 1, "op": "configure", "config": fields})
    try:
        request = decode_request(line)
        assert isinstance(request.config, ConfigPatch)
        return apply_patch(Config(), request.config, NOW)
    except ProtocolError as exc:
        return exc.message
    except ConfigError as exc:
        return str(exc)


def test_the_document_gives_a_range_for_every_number_field() -> None:
    numbers = {f.name for f in contract.NUMBER_FIELDS}
    typed = {f.name for f in msgspec.structs.fields(Config) if type(f.default) in (int, float)}
    assert numbers == typed and len(numbers) == 8


@settings(max_examples=EXAMPLES)
@given(st.data())
@pytest.mark.parametrize("field", contract.NUMBER_FIELDS, ids=lambda f: f.name)
def test_numbers_are_accepted_exactly_within_their_range(
    field: contract.NumberField, data: st.DataObject
) -> None:
    value = data.draw(contract.numbers_around(field))
    result = configure({field.name: value})
    if field.accepts(value):
        assert isinstance(result, Config), result
        stored = getattr(result, field.name)
        assert stored == field.stored(value) and type(stored) is type(field.stored(value))
    else:
        assert result == str(result) and f"$.config.{field.name}" in result


@settings(max_examples=EXAMPLES)
@given(contract.crn_plans())
def test_crn_lists_hold_only_five_ascii_digits_within_the_rules(plan: dict[str, Any]) -> None:
    result = configure(plan)
    if contract.crn_lists_ok(plan["ecrn"], plan["scrn"], plan["backup"]):
        assert isinstance(result, Config), result
        assert (list(result.ecrn), list(result.scrn), result.backup) == (
            plan["ecrn"],
            plan["scrn"],
            plan["backup"],
        )
    else:
        assert isinstance(result, str) and "$.config" in result


@settings(max_examples=EXAMPLES)
@given(contract.base_urls())
def test_the_base_url_is_scheme_host_and_port_only(text: str) -> None:
    result = configure({"obs_base_url": text})
    expected = contract.normalized_url(text)
    if expected is None:
        assert isinstance(result, str) and "$.config.obs_base_url" in result
    else:
        assert isinstance(result, Config) and result.obs_base_url == expected, result


@settings(max_examples=EXAMPLES)
@given(contract.ntp_server_lists)
def test_ntp_servers_are_one_to_eight_host_ports(servers: list[str]) -> None:
    result = configure({"ntp_servers": servers})
    if contract.ntp_servers_ok(servers):
        assert isinstance(result, Config) and list(result.ntp_servers) == servers, result
    else:
        assert isinstance(result, str) and "$.config.ntp_servers" in result


@settings(max_examples=EXAMPLES)
@given(contract.targets(NOW))
def test_targets_lie_within_the_late_start_window_and_the_horizon(text: str) -> None:
    result = configure({"target": text})
    instant = contract.target_instant(text, NOW)
    if contract.hhmmss_ok(text):
        assert isinstance(result, Config), result
        assert result.target is not None
        resolved = datetime.fromisoformat(result.target)
        assert NOW - contract.TARGET_LATE < resolved <= NOW + contract.TARGET_HORIZON
    elif instant is not None:
        assert isinstance(result, Config), result
        assert result.target is not None and datetime.fromisoformat(result.target) == instant
    else:
        assert isinstance(result, str) and "$.config.target" in result


@given(st.booleans() | st.none() | st.integers(-1, 2) | st.text(max_size=5))
def test_retry_full_is_a_boolean(value: object) -> None:
    result = configure({"retry_full": value})
    if isinstance(value, bool):
        assert isinstance(result, Config) and result.retry_full is value
    else:
        assert isinstance(result, str) and "$.config.retry_full" in result


def test_a_crn_with_a_trailing_newline_is_refused() -> None:
    # Python's `$` matches before a final newline: the bug this contract test was written for.
    assert configure({"ecrn": ["12345\n"]}) == (
        "Expected a 5-digit CRN string - at `$.config.ecrn[0]`"
    )


def test_a_target_thousands_of_years_ahead_is_refused() -> None:
    assert configure({"target": "9999-01-01T00:00:00+03:00"}) == (
        "'9999-01-01T00:00:00+03:00' is more than 365 days ahead; check the year - at "
        "`$.config.target`"
    )
