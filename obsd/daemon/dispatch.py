"""Serving one request: who may, one command at a time, the handler, and errors as codes.

Domain exceptions become error codes here, in one table, and nowhere else; a connection maps
what is left (a bug) to INTERNAL_ERROR.
"""

from __future__ import annotations

from typing import Any, Final

import anyio

from obsd import __version__
from obsd.adapters.eventlog import LogDamaged, StorageFailed
from obsd.core.config import ConfigError
from obsd.core.protocol import (
    PROTOCOL_VERSION,
    Access,
    AnyRequest,
    ErrorCode,
    Greeting,
    ProtocolError,
)
from obsd.daemon.context import Caller, Context
from obsd.daemon.ops import HANDLERS

ERROR_CODES: Final[dict[type[Exception], ErrorCode]] = {
    ConfigError: ErrorCode.VALIDATION_ERROR,
    LogDamaged: ErrorCode.LOG_DAMAGED,
    StorageFailed: ErrorCode.STORAGE_FAILED,
}


class Dispatcher:
    """Serves requests for every connection of one daemon."""

    def __init__(self, ctx: Context, storage_failed: anyio.Event) -> None:
        self.ctx = ctx
        # Set when a write or sync of the log failed: the daemon must stop (see lifecycle).
        self._storage_failed = storage_failed
        # Commands read the state, then append; one at a time keeps each one's view current.
        self._command_lock = anyio.Lock()

    def greeting(self, access: Access) -> Greeting:
        """The first line of every connection."""
        return Greeting(
            protocol=PROTOCOL_VERSION,
            server=__version__,
            log_id=self.ctx.state.log_id,
            head_seq=self.ctx.journal.log.head_seq,
            access=access,
        )

    async def handle(self, request: AnyRequest, caller: Caller) -> Any:
        """Serve one request (other than `tail`); return its reply or raise ProtocolError."""
        try:
            if not request.mutating:
                return await HANDLERS[type(request)](self.ctx, request, caller)
            if caller.access is not Access.RW:
                raise ProtocolError(
                    ErrorCode.PERMISSION_DENIED,
                    f"op {request.__struct_config__.tag!r} changes state; this connection "
                    f"(uid {caller.peer.uid}) is read-only",
                )
            async with self._command_lock:
                return await HANDLERS[type(request)](self.ctx, request, caller)
        except ProtocolError as exc:
            raise ProtocolError(exc.code, exc.message, request.id) from None
        except tuple(ERROR_CODES) as exc:
            if isinstance(exc, StorageFailed):
                self._storage_failed.set()
            code = next(code for kind, code in ERROR_CODES.items() if isinstance(exc, kind))
            raise ProtocolError(code, str(exc), request.id) from None
