"""The daemon's answers to each op: reads from the folded state, commands through the log."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import anyio
import msgspec

from obsd import __version__
from obsd.adapters.clock import Clock
from obsd.adapters.control_socket import Peer
from obsd.adapters.eventlog import EventLog, LogDamaged, StorageFailed
from obsd.adapters.token_store import TokenStore
from obsd.core.config import ConfigError, apply_patch
from obsd.core.events import Actor, ConfigChangedPayload, Event
from obsd.core.protocol import (
    PROTOCOL_VERSION,
    Access,
    AnyRequest,
    Configure,
    ErrorCode,
    Events,
    GetConfig,
    Greeting,
    Health,
    Ping,
    ProtocolError,
    Schema,
    Status,
    schema,
)
from obsd.core.runs import summary
from obsd.core.state import DaemonState, apply
from obsd.core.token import TokenError, expired, inspect_token
from obsd.daemon.run_ops import RunOps
from obsd.daemon.runner import Runner

# `health` warns before a full disk bites: below this, a burst of events could fail to land.
LOW_DISK_BYTES: Final = 64 * 1024 * 1024
# obsd fires on NTP time whatever the system clock says, but a clock this far off means the
# machine's own time sync is broken, which an operator should hear about.
CLOCK_OFFSET_WARNING_MS: Final = 100.0


class _TypeOnly(msgspec.Struct):
    type: str


_type_decoder: Final = msgspec.json.Decoder(_TypeOnly)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request, and what they may do."""

    peer: Peer
    access: Access

    @property
    def actor(self) -> Actor:
        """The actor recorded on command events."""
        return Actor(uid=self.peer.uid, pid=self.peer.pid)


class Service:
    """Holds the folded state and the adapters; one method per op."""

    def __init__(self, state_dir: Path, token_store: TokenStore, clock: Clock,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.state_dir = state_dir
        self._state = DaemonState()
        self.tokens = token_store
        self.clock = clock
        self.now = now
        # Set when a write or sync of the log failed: the daemon must stop (see main).
        self.storage_failed = anyio.Event()
        self.runner = Runner(self, clock, self.storage_failed)
        self.started_monotonic = time.monotonic()
        self.replayed_events = 0
        # Commands read the state, then append; one at a time keeps each one's view current.
        self._command_lock = anyio.Lock()
        self._log: EventLog | None = None
        self._handlers: dict[type[Any], Callable[[Any, Caller], Awaitable[Any]]] = {
            Ping: self._ping,
            Status: self._status,
            GetConfig: self._config,
            Configure: self._configure,
            Events: self._events,
            Health: self._health,
            Schema: self._schema,
            **RunOps(self).handlers(),
        }

    @property
    def state(self) -> DaemonState:
        """The fold of every event so far."""
        return self._state

    @property
    def token(self) -> str | None:
        """The OBS token in use (for the OBS client only)."""
        return self.tokens.token

    def fold(self, event: Event) -> None:
        """Apply one event to the state (the log calls this for every event, old and new)."""
        self._state = apply(self._state, event)

    def attach(self, log: EventLog) -> None:
        """Use `log` (opened with `fold` as its visitor) from now on."""
        self._log = log
        self.replayed_events = log.replayed

    @property
    def log(self) -> EventLog:
        """The open event log."""
        assert self._log is not None, "attach() the log first"
        return self._log

    def greeting(self, access: Access) -> Greeting:
        """The first line of every connection."""
        return Greeting(protocol=PROTOCOL_VERSION, server=__version__,
                        log_id=self.state.log_id, head_seq=self.log.head_seq, access=access)

    async def handle(self, request: AnyRequest, caller: Caller) -> Any:
        """Serve one request (other than `tail`); return its data or raise ProtocolError."""
        if request.mutating:
            if caller.access is not Access.RW:
                raise ProtocolError(
                    ErrorCode.PERMISSION_DENIED,
                    f"op {request.__struct_config__.tag!r} changes state; this connection "
                    f"(uid {caller.peer.uid}) is read-only",
                    request.id,
                )
            async with self._command_lock:
                try:
                    return await self._handlers[type(request)](request, caller)
                except LogDamaged as exc:
                    raise ProtocolError(ErrorCode.LOG_DAMAGED, str(exc), request.id) from None
                except StorageFailed as exc:
                    self.storage_failed.set()
                    raise ProtocolError(ErrorCode.STORAGE_FAILED, str(exc), request.id) from None
        return await self._handlers[type(request)](request, caller)

    # -- reads --------------------------------------------------------------------------

    async def _ping(self, request: Ping, caller: Caller) -> Any:
        return {"pong": True}

    async def _status(self, request: Status, caller: Caller) -> Any:
        log = self.log
        return {
            "daemon": {
                "version": __version__,
                "pid": os.getpid(),
                "started_at": self.state.last_start,
                "uptime_s": round(time.monotonic() - self.started_monotonic, 3),
                "replayed_events": self.replayed_events,
            },
            "phase": self.state.phase,
            "active_run": self._active_run_view(),
            "log": self._log_view(log),
            "access": caller.access,
        }

    def _active_run_view(self) -> dict[str, Any] | None:
        run_id = self.state.active_run
        if run_id is None:
            return None
        run = self.state.runs[run_id]
        calibration = run.calibration
        return {**msgspec.structs.asdict(summary(run)),
                "fire_at": calibration.fire_at if calibration else None,
                "remaining_s": round((run.target_ns - self.clock.wall_ns()) / 1e9, 3)}

    def _log_view(self, log: EventLog) -> dict[str, Any]:
        return {
            "log_id": self.state.log_id,
            "head_seq": log.head_seq,
            "durable_seq": log.durable_seq,
            "segments": log.segment_count,
            "directory": str(log.directory),
            "damage": log.damage,
            "failure": log.failure,
            "repairs": self.state.repairs,
        }

    async def _config(self, request: GetConfig | Configure, caller: Caller) -> Any:
        return {"config": self.state.config, "token": self.tokens.stored}

    async def _events(self, request: Events, caller: Caller) -> Any:
        wanted = set(request.types) if request.types else None
        items: list[msgspec.Raw] = []
        cursor = request.after_seq
        log = self.log
        while len(items) < request.limit and cursor < log.head_seq:
            chunk = await log.read_after(cursor)
            for line in chunk.splitlines():
                cursor += 1
                if wanted is None or _type_decoder.decode(line).type in wanted:
                    items.append(msgspec.Raw(line))
                    if len(items) == request.limit:
                        break
        return {
            "items": items,
            "next_after_seq": cursor,
            "head_seq": log.head_seq,
            "has_more": cursor < log.head_seq,
        }

    async def _health(self, request: Health, caller: Caller) -> Any:
        log = self.log
        usage = shutil.disk_usage(log.directory)
        problems: list[str] = []
        if log.damage is not None:
            problems.append(f"log damaged at {log.damage.segment} line {log.damage.line}: "
                            f"{log.damage.reason}")
        if log.failure is not None:
            problems.append(log.failure)
        if not os.access(log.directory, os.W_OK):
            problems.append(f"{log.directory} is not writable")
        if usage.free < LOW_DISK_BYTES:
            problems.append(f"only {usage.free // (1024 * 1024)} MiB free on the state disk")
        if self.tokens.stored.problem:
            problems.append(self.tokens.stored.problem)
        clock = self._clock_view(problems)
        return {
            "ok": not problems,
            "problems": problems,
            "log": {"writable": log.damage is None and log.failure is None,
                    "head_seq": log.head_seq, "durable_seq": log.durable_seq},
            "disk": {"path": str(log.directory), "free_bytes": usage.free,
                     "total_bytes": usage.total, "low": usage.free < LOW_DISK_BYTES},
            "clock": clock,
        }

    def _clock_view(self, problems: list[str]) -> dict[str, Any]:
        calibration = self.state.calibration
        if calibration is None:
            return {"status": "unknown", "detail": "not calibrated yet (obsctl calibrate)",
                    "checked_at": None, "ntp_offset_ms": None, "ntp_delay_ms": None}
        status = "ok"
        if calibration.ntp_error:
            status = "no_ntp"
            problems.append(f"NTP failed at the last calibration: {calibration.ntp_error}")
        elif abs(calibration.ntp_offset_ms or 0) > CLOCK_OFFSET_WARNING_MS:
            status = "offset"
            problems.append(f"the system clock is {calibration.ntp_offset_ms:+.1f} ms off NTP "
                            "time (obsd corrects for it; check chrony/timesyncd)")
        return {"status": status, "detail": calibration.ntp_server,
                "checked_at": self.state.calibrated_at,
                "ntp_offset_ms": calibration.ntp_offset_ms,
                "ntp_delay_ms": calibration.ntp_delay_ms}

    async def _schema(self, request: Schema, caller: Caller) -> Any:
        return schema()

    # -- commands -----------------------------------------------------------------------

    async def _configure(self, request: Configure, caller: Caller) -> Any:
        patch = request.config
        if not patch.changed_fields():
            raise ProtocolError(ErrorCode.VALIDATION_ERROR,
                                "config is empty: give at least one field to change - at "
                                "`$.config`", request.id)
        try:
            config = apply_patch(self.state.config, patch, self.now())
        except ConfigError as exc:
            raise ProtocolError(ErrorCode.VALIDATION_ERROR, str(exc), request.id) from None
        token_info: Any = msgspec.UNSET
        if patch.token is not msgspec.UNSET:
            token = None
            if patch.token is not None:
                try:
                    token, info = inspect_token(patch.token)
                except TokenError as exc:
                    raise ProtocolError(
                        ErrorCode.VALIDATION_ERROR, f"{exc} - at `$.config.token`", request.id
                    ) from None
                if expired(info, self.now()):
                    raise ProtocolError(
                        ErrorCode.VALIDATION_ERROR,
                        f"the token expired at {info.exp}; log in to OBS again and paste a "
                        "fresh one - at `$.config.token`", request.id)
            # Refuse before touching the token file if the change could not be recorded.
            self.log.check_writable()
            await anyio.to_thread.run_sync(self.tokens.replace, token)
            # Clearing falls back to a systemd credential, if there is one: record what is
            # in use now.
            token_info = self.tokens.stored.info
        await self.log.append(ConfigChangedPayload(
            actor=caller.actor, changed=patch.changed_fields(), config=config, token=token_info,
        ))
        return await self._config(request, caller)
