"""Binding the control socket safely and telling peers apart."""

import grp
import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from obsd.adapters.control_socket import (
    Peer,
    SocketInUse,
    UnsafeSocketPath,
    access_for,
    bind_control_socket,
    peer_of,
)
from obsd.core.protocol import Access


def connects(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def test_socket_is_private_without_a_group(short_dir: Path) -> None:
    bound = bind_control_socket(short_dir / "s.sock", None)
    mode = (short_dir / "s.sock").stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    bound.sock.close()


def test_socket_is_group_accessible_with_a_group(short_dir: Path) -> None:
    gid = grp.getgrnam("nogroup").gr_gid if os.geteuid() == 0 else os.getgid()
    bound = bind_control_socket(short_dir / "s.sock", gid)
    info = (short_dir / "s.sock").stat()
    assert stat.S_IMODE(info.st_mode) == 0o660 and info.st_gid == gid
    bound.sock.close()


def test_a_stale_socket_is_replaced(short_dir: Path) -> None:
    path = short_dir / "s.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # The file stays, nobody listens: what a crash leaves behind.
    bound = bind_control_socket(path, None)
    assert connects(path)
    bound.sock.close()


def test_a_live_socket_is_never_stolen(short_dir: Path) -> None:
    path = short_dir / "s.sock"
    first = bind_control_socket(path, None)
    with pytest.raises(SocketInUse):
        bind_control_socket(path, None)
    assert connects(path), "the live daemon must keep its socket"
    first.sock.close()


@pytest.mark.parametrize("kind", ["file", "symlink", "directory"])
def test_something_else_at_the_path_is_left_alone(short_dir: Path, kind: str) -> None:
    path = short_dir / "s.sock"
    target = short_dir / "precious"
    target.write_text("keep me")
    if kind == "file":
        path.write_text("keep me too")
    elif kind == "symlink":
        path.symlink_to(target)
    else:
        path.mkdir()
    with pytest.raises(UnsafeSocketPath):
        bind_control_socket(path, None)
    assert target.read_text() == "keep me" and path.exists()


def test_remove_file_removes_only_our_own_socket(short_dir: Path) -> None:
    path = short_dir / "s.sock"
    bound = bind_control_socket(path, None)
    bound.sock.close()
    path.unlink()
    path.write_text("someone else's")
    bound.remove_file()
    assert path.read_text() == "someone else's"
    path.unlink()
    again = bind_control_socket(path, None)
    again.remove_file()
    assert not path.exists()
    again.sock.close()


def test_peer_credentials_come_from_the_kernel(short_dir: Path) -> None:
    bound = bind_control_socket(short_dir / "s.sock", None)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(short_dir / "s.sock"))
    server_side, _ = bound.sock.accept()
    assert peer_of(server_side) == Peer(os.getpid(), os.geteuid(), os.getegid())
    for s in (server_side, client, bound.sock):
        s.close()


def test_access_rules() -> None:
    me = os.getpid()
    assert access_for(Peer(me, 0, 0), daemon_uid=999, admin_gid=None) is Access.RW
    assert access_for(Peer(me, 999, 999), daemon_uid=999, admin_gid=None) is Access.RW
    assert access_for(Peer(me, 1234, 1234), daemon_uid=999, admin_gid=None) is Access.RO
    assert access_for(Peer(me, 1234, 1234), daemon_uid=999, admin_gid=4321) is Access.RO
    # Membership through the peer's primary group.
    assert access_for(Peer(me, 1234, 4321), daemon_uid=999, admin_gid=4321) is Access.RW


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a child process extra groups needs root")
def test_membership_through_supplementary_groups_of_the_peer_process() -> None:
    admin_gid = 54321
    child = subprocess.Popen(["sleep", "30"], extra_groups=[admin_gid])
    try:
        peer = Peer(child.pid, 1234, 1234)
        assert access_for(peer, daemon_uid=999, admin_gid=admin_gid) is Access.RW
        assert access_for(peer, daemon_uid=999, admin_gid=54322) is Access.RO
    finally:
        child.kill()
        child.wait()
