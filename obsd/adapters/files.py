"""Small file-system operations that durability depends on."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final, NamedTuple

from obsd.core.oserrors import explain

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


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data`, readable by its owner only (0600), durably."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
    )
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    fsync_dir(path.parent)


class SecretSource(NamedTuple):
    """One place a secret may be kept, as `first_secret` tries them."""

    path: Path | None
    source: str
    remedy: str  # what to do when it cannot be read


class FoundSecret(NamedTuple):
    """The text of the first place that held a secret, or why it could not be read."""

    text: str | None
    source: str
    problem: str | None


def first_secret(places: Sequence[SecretSource]) -> FoundSecret | None:
    """The first of `places` holding something; None when none does.

    A missing or empty file is no secret (systemd's placeholder credential is empty); one
    that cannot be read is a problem to show, not a reason to stop the daemon.
    """
    for path, source, remedy in places:
        if path is None:
            continue
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            continue
        except OSError as exc:
            return FoundSecret(None, source, explain(exc, remedy))
        if text.strip():
            return FoundSecret(text, source, None)
    return None


def replace_private(path: Path, data: bytes | None) -> None:
    """Store `data` at `path` as write_private does, or remove the file (durably) with None."""
    if data is None:
        path.unlink(missing_ok=True)
        fsync_dir(path.parent)
    else:
        write_private(path, data)
