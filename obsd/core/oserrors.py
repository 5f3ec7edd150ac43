"""What a failed file-system call means for a person: one line naming the path and the fix."""

from __future__ import annotations

import errno
from typing import Final

# What went wrong with the path, in words an operator can act on (errno names mean little).
_MEANING: Final[dict[int, str]] = {
    errno.EROFS: "is on a read-only file system",
    errno.EACCES: "is not accessible: permission denied",
    errno.EPERM: "is not accessible: operation not permitted",
    errno.ENOTDIR: "has a part that is not a directory",
    errno.EISDIR: "is a directory where a file belongs",
    errno.EEXIST: "exists and is not a directory",
    errno.ELOOP: "is a symbolic link, which obsd does not follow",
    errno.ENOSPC: "is on a full disk",
    errno.EDQUOT: "is over its disk quota",
    errno.ENOENT: "does not exist",
    errno.ENAMETOOLONG: "is too long a path",
    errno.EMFILE: "cannot be opened: too many open files",
}


def explain(exc: OSError, remedy: str, uid: int | None = None) -> str:
    """`exc` as one line: the path, what is wrong with it, and `remedy`."""
    path = exc.filename if exc.filename is not None else "a file"
    meaning = _MEANING.get(exc.errno or 0) or f"failed: {exc.strerror or exc}"
    if exc.errno in (errno.EACCES, errno.EPERM) and uid is not None:
        meaning += f" for uid {uid}"
    return f"{path} {meaning}; {remedy}"
