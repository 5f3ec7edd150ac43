"""The control socket's file: binding it safely, and who is on the other end (SO_PEERCRED)."""

from __future__ import annotations

import errno
import os
import socket
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from obsd.core.protocol import Access

# A listen backlog that absorbs a burst of tail clients reconnecting at once.
LISTEN_BACKLOG = 128
# sockaddr_un holds 108 bytes, one of them the terminating NUL (unix(7)).
MAX_SOCKET_PATH_BYTES = 107
_UCRED = struct.Struct("3i")


class SocketInUse(RuntimeError):
    """A live daemon already answers on the socket path."""


class UnsafeSocketPath(RuntimeError):
    """Something other than a stale socket occupies the socket path."""


@dataclass(frozen=True, slots=True)
class Peer:
    """The process on the other end of a connection, as the kernel vouches for it."""

    pid: int
    uid: int
    gid: int


@dataclass(frozen=True, slots=True)
class BoundSocket:
    """A listening socket and the file it was bound to (identified, to remove only ours)."""

    sock: socket.socket
    path: Path
    # Inode numbers are reused at once after an unlink; the change time tells files apart.
    identity: tuple[int, int, int]

    def remove_file(self) -> None:
        """Unlink the socket file, unless something else has replaced it since."""
        try:
            current = self.path.lstat()
        except OSError:
            return
        if _identity(current) == self.identity:
            self.path.unlink(missing_ok=True)


def _identity(info: os.stat_result) -> tuple[int, int, int]:
    return info.st_dev, info.st_ino, info.st_ctime_ns


def bind_control_socket(path: Path, group_gid: int | None) -> BoundSocket:
    """Bind and listen on `path`: mode 0660 with `group_gid`, else 0600; never steal a live one."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise UnsafeSocketPath(
            f"{path} is {len(os.fsencode(path))} bytes long; a Unix socket "
            f"path holds at most {MAX_SOCKET_PATH_BYTES}: choose a shorter "
            "--socket"
        )
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # The umask makes the socket private from the instant it exists; chmod then opens
        # it to the group, so there is no window in which others could connect.
        previous = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(previous)
        if group_gid is not None:
            try:
                os.chown(path, -1, group_gid)
            except PermissionError:
                path.unlink(missing_ok=True)
                raise UnsafeSocketPath(
                    f"cannot give {path} to group {group_gid}: the daemon's user must be a "
                    "member of the --socket-group (or --admin-group)"
                ) from None
            os.chmod(path, 0o660)
        sock.listen(LISTEN_BACKLOG)
        identity = _identity(path.lstat())
    except BaseException:
        sock.close()
        raise
    return BoundSocket(sock, path, identity)


def _clear_stale(path: Path) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise UnsafeSocketPath(
            f"{path} exists and is not a socket; refusing to replace it: "
            "move it away or choose another --socket"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        path.unlink()  # Nobody listens: a stale socket left by a crash.
        return
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
        return
    finally:
        probe.close()
    raise SocketInUse(f"another obsd is listening on {path}")


def peer_of(sock: socket.socket) -> Peer:
    """The peer's pid, uid and gid from SO_PEERCRED."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return Peer(pid, uid, gid)


def peer_groups(peer: Peer) -> set[int]:
    """The peer process's primary and supplementary groups (empty if it is gone)."""
    groups = {peer.gid}
    try:
        with open(f"/proc/{peer.pid}/status") as status:
            for line in status:
                if line.startswith("Groups:"):
                    groups.update(int(g) for g in line.split()[1:])
                    break
    except OSError:
        pass
    return groups


def access_for(peer: Peer, daemon_uid: int, admin_gid: int | None) -> Access:
    """Root, the daemon's own user and members of the admin group may change things."""
    if peer.uid in (0, daemon_uid):
        return Access.RW
    if admin_gid is not None and admin_gid in peer_groups(peer):
        return Access.RW
    return Access.RO
