"""A few records' worth of disk kept aside, for a shot the log could not take.

When the log fails close to a shot, the shot goes anyway; what it did is written here, and the
next start appends it to the log, so that no second POST lands inside OBS's debounce. The file
is made at its full size (its blocks allocated) when the daemon opens its log, so writing it
later needs no new space: a disk that has filled up since still takes it. It is rewritten in
place, whole, and synced.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from obsd.adapters.files import fsync_dir

SPARE_NAME: Final = "spare-record"
# Room for a phase change, a request and its answer for a dozen CRNs, several times over.
SPARE_BYTES: Final = 16 * 1024


class SpareRecord:
    """The spare file in `directory`; `ready` once it exists at its full size."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / SPARE_NAME
        self.ready = False

    def prepare(self) -> None:
        """Make the file at its full size if it is not (OSError if the disk will not)."""
        fd = _open(self.path, os.O_RDWR | os.O_CREAT)
        try:
            created = os.fstat(fd).st_size != SPARE_BYTES
            if created:
                os.posix_fallocate(fd, 0, SPARE_BYTES)
                os.fdatasync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)
        self.ready = True

    def write(self, data: bytes) -> None:
        """Replace the contents with `data` and sync; OSError (or ValueError: too big) if not."""
        if len(data) > SPARE_BYTES:
            raise ValueError(f"{len(data)} bytes do not fit the {SPARE_BYTES}-byte spare record")
        fd = _open(self.path, os.O_WRONLY)
        try:
            os.pwrite(fd, data.ljust(SPARE_BYTES, b"\0"), 0)
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def read(self) -> bytes:
        """What was written last (b"" if nothing, or no file)."""
        try:
            fd = _open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return b""
        try:
            return os.pread(fd, SPARE_BYTES, 0).rstrip(b"\0")
        finally:
            os.close(fd)


def _open(path: Path, flags: int) -> int:
    return os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
