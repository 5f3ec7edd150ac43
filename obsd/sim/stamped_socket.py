"""A TCP socket whose reads keep the kernel's receive timestamp of the bytes they return.

The simulator judges "never early" by when a request's first byte arrived. Read at the moment
its event loop gets round to the bytes, that stamp is late by however long the loop, or the
CPU it runs on, was busy: a client at real-time priority on the same core delays its own
stamp. The kernel stamps each packet as it is received (on loopback, inside the sender's
write), on the system's real-time clock; `recvmsg` hands that stamp back with the bytes.
asyncio reads a socket through `recv` (plain transports) or `recv_into` (TLS), so a socket
that answers those from `recvmsg` gives every transport the stamp of what it just read.
"""

from __future__ import annotations

import socket
import struct
import sys
from typing import TYPE_CHECKING, Final

from obsd.core.timing import NS

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

# Linux's SO_TIMESTAMPNS (asm-generic/socket.h); the socket module does not export it. Its
# control message (SCM_TIMESTAMPNS, the same number) carries a struct timespec on the
# CLOCK_REALTIME scale: two native longs, seconds and nanoseconds.
SO_TIMESTAMPNS: Final = 35
_TIMESPEC: Final = struct.Struct("@ll")
_ANCILLARY_BYTES: Final = socket.CMSG_SPACE(_TIMESPEC.size)


def enable_stamps(sock: socket.socket) -> bool:
    """Ask the kernel to stamp what `sock` receives; return whether it will.

    Set on a listening socket, it holds for the connections accepted from it, and for bytes
    that reach them before they are accepted.
    """
    if sys.platform != "linux":
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False  # no stamps: callers fall back to their own reading of the clock
    return True


class StampedSocket(socket.socket):
    """A socket whose last read keeps its kernel receive time (`received_wall_ns`)."""

    received_wall_ns: int | None = None
    stamps_enabled: bool = False

    @classmethod
    def adopt(cls, accepted: socket.socket) -> StampedSocket:
        """Take over an accepted socket, stamping what it receives if the kernel can."""
        stamped = cls(accepted.family, accepted.type, accepted.proto, fileno=accepted.detach())
        stamped.stamps_enabled = enable_stamps(stamped)
        return stamped

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Read like `socket.recv`, keeping the receive time of the bytes read."""
        if not self.stamps_enabled:
            return super().recv(bufsize, flags)
        data, ancillary, _, _ = self.recvmsg(bufsize, _ANCILLARY_BYTES, flags)
        self._keep(ancillary, len(data))
        return data

    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0, flags: int = 0) -> int:
        """Read like `socket.recv_into`, keeping the receive time of the bytes read."""
        if not self.stamps_enabled:
            return super().recv_into(buffer, nbytes, flags)
        view = memoryview(buffer)
        target = view[:nbytes] if nbytes else view
        count, ancillary, _, _ = self.recvmsg_into([target], _ANCILLARY_BYTES, flags)
        self._keep(ancillary, count)
        return count

    def _keep(self, ancillary: list[tuple[int, int, bytes]], count: int) -> None:
        if count == 0:
            return  # end of input: the bytes read before keep their stamp
        self.received_wall_ns = None
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
                self.received_wall_ns = seconds * NS + nanoseconds
