"""docs/protocol.md is the contract: every name the code speaks appears in it."""

from pathlib import Path

import msgspec
import pytest

from obsd.core.config import Config, ConfigPatch
from obsd.core.events import EVENT_TYPES
from obsd.core.phases import Phase
from obsd.core.protocol import OPS, ErrorCode
from obsd.core.results import CrnState

DOC = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()

NAMES = sorted(
    {("op", op) for op in OPS}
    | {("event type", event_type) for event_type in EVENT_TYPES}
    | {("error code", code.value) for code in ErrorCode}
    | {("config field", field.name) for field in msgspec.structs.fields(ConfigPatch)}
    | {("config field", field.name) for field in msgspec.structs.fields(Config)}
    | {("CRN state", state.value) for state in CrnState}
    | {("phase", phase.value) for phase in Phase}
)


@pytest.mark.parametrize(("kind", "name"), NAMES)
def test_every_name_is_documented(kind: str, name: str) -> None:
    assert f"`{name}`" in DOC, f"{kind} {name!r} is missing from docs/protocol.md"
