"""Small file-system operations that durability depends on."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Final

# fallocate(2): allocate blocks past the end of a file without changing its size, so that later
# appends into them cannot fail for want of space (a replay still sees only what was written).
_FALLOC_FL_KEEP_SIZE: Final = 1
_libc = ctypes.CDLL(None, use_errno=True)
_fallocate = _libc.fallocate
_fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
_fallocate.restype = ctypes.c_int


def fsync_dir(directory: Path) -> None:
    """Make a directory's entries (created, renamed, removed files) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def reserve_space(fd: int, offset: int, length: int) -> None:
    """Allocate `length` bytes of `fd` from `offset` on, keeping its size (OSError if not)."""
    if _fallocate(fd, _FALLOC_FL_KEEP_SIZE, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
