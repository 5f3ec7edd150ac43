"""The kernel's view of its own clock, read with adjtimex(2) in read-only mode (modes = 0).

Reading needs no privilege (setting would need CAP_SYS_TIME, which obsd never has); a seccomp
filter may still refuse the call, and that is reported rather than guessed around.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from typing import Final

from obsd.core.clock_select import KernelClock

# adjtimex's return value and status bit for "not synchronised" (linux/timex.h).
TIME_ERROR: Final = 5
STA_UNSYNC: Final = 0x0040


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """struct timex, as far as obsd reads it; the tail is padding the kernel may write into."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("rest", ctypes.c_byte * 128),
    ]


@functools.cache
def _libc() -> ctypes.CDLL:
    # find_library runs ldconfig: once, not at every read (health asks after each event).
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def read_kernel_clock() -> KernelClock:
    """Whether the kernel says its clock is synchronised, and its error bounds (µs)."""
    if not sys.platform.startswith("linux"):
        return KernelClock(False, None, None, problem="adjtimex exists only on Linux")
    libc = _libc()
    timex = _Timex()
    state = libc.adjtimex(ctypes.byref(timex))
    if state < 0:
        errno = ctypes.get_errno()
        return KernelClock(
            False, None, None, problem=f"adjtimex was refused ({os.strerror(errno)})"
        )
    synchronised = state != TIME_ERROR and not timex.status & STA_UNSYNC
    return KernelClock(synchronised, int(timex.maxerror), int(timex.esterror))
