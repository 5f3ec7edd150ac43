"""Where the daemon keeps its socket and state, shared by obsd and obsctl (imports stay light).

An instance (one student on a shared VPS, systemd/obsd@.service) is named NAME: every place
the single daemon calls "obsd" is "obsd-NAME" for it, in /run, /var/lib and the user's dirs.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Final

SOCKET_NAME: Final = "obsd.sock"
APP_NAME: Final = "obsd"
# obsd@NAME.service runs as user obsd-NAME, and a user name has at most 32 characters.
INSTANCE_PATTERN: Final = re.compile(r"[a-z][a-z0-9-]{0,26}")
INSTANCE_RULE: Final = "1-27 lowercase letters, digits or '-', starting with a letter"


class InstanceError(ValueError):
    """An instance name obsd cannot use."""


def app_name(instance: str | None) -> str:
    """The name of the daemon's directories and user: obsd, or obsd-NAME for an instance."""
    if instance is None:
        return APP_NAME
    if not INSTANCE_PATTERN.fullmatch(instance):
        raise InstanceError(f"instance name {instance!r} is not {INSTANCE_RULE}")
    return f"{APP_NAME}-{instance}"


def service_name(instance: str | None) -> str:
    """The systemd service of the daemon: obsd, or obsd@NAME (which runs as user obsd-NAME)."""
    if instance is None:
        return APP_NAME
    app_name(instance)  # checks the name
    return f"{APP_NAME}@{instance}"


def instance_of(env: Mapping[str, str] = os.environ) -> str | None:
    """$OBSD_INSTANCE, checked; None when unset or empty."""
    value = env.get("OBSD_INSTANCE") or None
    try:
        app_name(value)
    except InstanceError as exc:
        raise InstanceError(f"$OBSD_INSTANCE: {exc}") from None
    return value


def system_sockets(instance: str | None) -> tuple[Path, Path]:
    """Where the units put the socket: obsd(@).socket's, else the service's RuntimeDirectory=.

    The first is outside the runtime directory, which systemd removes when the service stops.
    """
    name = app_name(instance)
    return Path("/run") / f"{name}.sock", Path("/run") / name / SOCKET_NAME


def _first(value: str) -> Path:
    # systemd joins several directories with ':'; ours is the first.
    return Path(value.split(":", 1)[0])


def _user_runtime_dir(instance: str | None) -> Path:
    import platformdirs

    with warnings.catch_warnings():
        # Without a usable $XDG_RUNTIME_DIR (su, cron, some SSH setups) platformdirs warns
        # over several lines and falls back to /tmp/runtime-UID; obsd and obsctl both take
        # the fallback, and a wrong path is reported in one line when connecting to it.
        warnings.simplefilter("ignore", UserWarning)
        return Path(platformdirs.user_runtime_dir(app_name(instance)))


def daemon_socket_path(env: Mapping[str, str] = os.environ) -> Path:
    """The socket the daemon binds: $OBSD_SOCKET, systemd's runtime dir, else the user's."""
    if value := env.get("OBSD_SOCKET"):
        return Path(value)
    if value := env.get("RUNTIME_DIRECTORY"):
        return _first(value) / SOCKET_NAME
    return _user_runtime_dir(instance_of(env)) / SOCKET_NAME


def client_socket(instance: str | None, env: Mapping[str, str] = os.environ) -> tuple[Path, str]:
    """The socket obsctl talks to, and the service behind it (for what to do when it fails).

    `instance` is obsctl's -i; without it: $OBSD_SOCKET, else $OBSD_INSTANCE's, else the
    single daemon's. Each is the system service's socket if there is one, else the user's.
    """
    if instance is None:
        if value := env.get("OBSD_SOCKET"):
            return Path(value), service_name(None)
        instance = instance_of(env)
    service = service_name(instance)
    for path in system_sockets(instance):
        try:
            path.lstat()
        except PermissionError:
            # A directory this user may not enter (/run/obsd is 0750 obsd:obsd): the socket
            # may well be there, and connecting says "no permission", which is the news.
            return path, service
        except OSError:
            continue
        return path, service
    return _user_runtime_dir(instance) / SOCKET_NAME, service


def state_dir_path(env: Mapping[str, str] = os.environ) -> Path:
    """The state directory: $OBSD_STATE_DIR, systemd's state dir, else the user's."""
    if value := env.get("OBSD_STATE_DIR"):
        return Path(value)
    if value := env.get("STATE_DIRECTORY"):
        return _first(value)
    import platformdirs

    return Path(platformdirs.user_state_dir(app_name(instance_of(env))))
