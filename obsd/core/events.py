"""The event vocabulary: every line of the log and of `tail` is one of these.

An event is `{"type": ..., "seq": N, "timestamp": "<ISO-8601 UTC>", "payload": {...}}`.
The log assigns `seq` and `timestamp`; producers build only the payload.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from msgspec import UNSET, UnsetType

from obsd.core.config import Config
from obsd.core.token import TokenInfo


class Actor(msgspec.Struct, frozen=True):
    """Who asked for a change, as the kernel reported the peer (SO_PEERCRED)."""

    uid: int
    pid: int


class LogCreatedPayload(msgspec.Struct, frozen=True):
    """The first event of a log: names its lineage."""

    log_id: str
    server: str


class DaemonStartedPayload(msgspec.Struct, frozen=True):
    """The daemon replayed the log and is about to accept connections."""

    server: str
    pid: int
    replayed_events: int


class DaemonStoppedPayload(msgspec.Struct, frozen=True):
    """The daemon is shutting down cleanly."""

    reason: str


class LogRepairedPayload(msgspec.Struct, frozen=True):
    """A torn last record (a crash mid-write) was cut off; the original file was kept."""

    segment: str
    truncated_at: int
    removed_bytes: int
    broken_copy: str


class ConfigChangedPayload(msgspec.Struct, frozen=True, omit_defaults=True):
    """The configuration after a `configure` command, and which fields it set."""

    actor: Actor
    changed: list[str]
    config: Config
    # Present only when the command set or cleared the token; never the token itself.
    token: TokenInfo | UnsetType | None = UNSET


class Event(msgspec.Struct, frozen=True, tag_field="type"):
    """Common envelope; subclasses fix `type` and the payload's shape."""

    seq: int
    timestamp: str


class LogCreated(Event, frozen=True, tag="log_created"):
    payload: LogCreatedPayload


class DaemonStarted(Event, frozen=True, tag="daemon_started"):
    payload: DaemonStartedPayload


class DaemonStopped(Event, frozen=True, tag="daemon_stopped"):
    payload: DaemonStoppedPayload


class LogRepaired(Event, frozen=True, tag="log_repaired"):
    payload: LogRepairedPayload


class ConfigChanged(Event, frozen=True, tag="config_changed"):
    payload: ConfigChangedPayload


AnyEvent = LogCreated | DaemonStarted | DaemonStopped | LogRepaired | ConfigChanged
EVENT_CLASSES: Final[tuple[type[Event], ...]] = AnyEvent.__args__
EVENT_TYPES: Final[frozenset[str]] = frozenset(
    str(cls.__struct_config__.tag) for cls in EVENT_CLASSES
)
# Producers hand the log a payload; this finds the event class that carries it.
EVENT_CLASS_FOR_PAYLOAD: Final[dict[type[Any], type[Event]]] = {
    field.type: cls
    for cls in EVENT_CLASSES
    for field in msgspec.structs.fields(cls)
    if field.name == "payload"
}

_encoder = msgspec.json.Encoder()
event_decoder: Final = msgspec.json.Decoder(AnyEvent)


def utc_timestamp(epoch_ns: int) -> str:
    """ISO-8601 UTC with microseconds and a Z, as every event carries."""
    seconds, nanos = divmod(epoch_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).replace(microsecond=nanos // 1000)
    return stamp.isoformat(timespec="microseconds").replace("+00:00", "Z")


def make_event(payload: msgspec.Struct, seq: int, epoch_ns: int) -> Event:
    """Wrap a payload in its event type with the given seq and time."""
    cls = EVENT_CLASS_FOR_PAYLOAD[type(payload)]
    return cls(seq=seq, timestamp=utc_timestamp(epoch_ns), payload=payload)  # type: ignore[call-arg]


def encode_event(event: Event) -> bytes:
    """One log line: the event as JSON plus the newline that frames it."""
    return _encoder.encode(event) + b"\n"
