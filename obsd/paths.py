"""Where the daemon keeps its socket and state, shared by obsd and obsctl (imports stay light)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

SOCKET_NAME: Final = "obsd.sock"
APP_NAME: Final = "obsd"
# Where the systemd units put the socket: systemd/obsd.socket (socket activation, outside the
# service's runtime directory), else systemd/obsd.service's RuntimeDirectory=obsd.
SYSTEM_SOCKETS: Final = (Path("/run/obsd.sock"), Path("/run/obsd") / SOCKET_NAME)


def _first(value: str) -> Path:
    # systemd joins several directories with ':'; ours is the first.
    return Path(value.split(":", 1)[0])


def _user_runtime_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_runtime_dir(APP_NAME))


def daemon_socket_path(env: Mapping[str, str] = os.environ) -> Path:
    """The socket the daemon binds: $OBSD_SOCKET, systemd's runtime dir, else the user's."""
    if value := env.get("OBSD_SOCKET"):
        return Path(value)
    if value := env.get("RUNTIME_DIRECTORY"):
        return _first(value) / SOCKET_NAME
    return _user_runtime_dir() / SOCKET_NAME


def client_socket_path(env: Mapping[str, str] = os.environ) -> Path:
    """The socket obsctl talks to: $OBSD_SOCKET, the system service's, else the user's."""
    if value := env.get("OBSD_SOCKET"):
        return Path(value)
    for path in SYSTEM_SOCKETS:
        try:
            path.lstat()
        except PermissionError:
            # A directory this user may not enter (/run/obsd is 0750 obsd:obsd): the socket
            # may well be there, and connecting says "no permission", which is the news.
            return path
        except OSError:
            continue
        return path
    return _user_runtime_dir() / SOCKET_NAME


def state_dir_path(env: Mapping[str, str] = os.environ) -> Path:
    """The state directory: $OBSD_STATE_DIR, systemd's state dir, else the user's."""
    if value := env.get("OBSD_STATE_DIR"):
        return Path(value)
    if value := env.get("STATE_DIRECTORY"):
        return _first(value)
    import platformdirs

    return Path(platformdirs.user_state_dir(APP_NAME))
