"""The JSON Schema of the whole protocol, generated from the msgspec types (never by hand)."""

from __future__ import annotations

from typing import Any

import msgspec

from obsd.core.events import AnyEvent
from obsd.core.protocol import PROTOCOL_VERSION, AnyRequest, CaughtUp, Greeting, Response
from obsd.core.replies import REPLIES


def schema() -> dict[str, Any]:
    """Every request, response envelope, reply (by op), greeting and event."""
    ops = sorted(REPLIES)
    (request, response, greeting, event, caught_up, *replies), components = (
        msgspec.json.schema_components(
            [AnyRequest, Response, Greeting, AnyEvent, CaughtUp, *(REPLIES[op] for op in ops)],
            ref_template="#/$defs/{name}",
        )
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "protocol": PROTOCOL_VERSION,
        "request": request,
        "response": response,
        "replies": dict(zip(ops, replies, strict=True)),
        "greeting": greeting,
        "event": event,
        "caught_up": caught_up,
        "$defs": components,
    }
