"""Where the OBS token lives: a 0600 file in the state dir, or a systemd credential."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from obsd.adapters.files import fsync_dir
from obsd.core.oserrors import explain
from obsd.core.token import StoredToken, TokenError, TokenSource, inspect_token

TOKEN_FILE: Final = "obs-token"
# The name under which systemd's LoadCredential= hands the token over (systemd/obsd.service).
CREDENTIAL_NAME: Final = "obs-token"


_REPLACE_FILE: Final = "remove it, then configure the token again (obsctl configure --token -)"
_FIX_CREDENTIAL: Final = (
    "put the token in the file LoadCredential= names (/etc/obsd/obs-token, for obsd@NAME "
    "/etc/obsd/NAME/obs-token) and restart the service"
)


class TokenStore:
    """Loads, replaces and clears the token; a token set over the socket beats a credential."""

    def __init__(self, state_dir: Path, credentials_dir: Path | None) -> None:
        self._path = state_dir / TOKEN_FILE
        self._credential = credentials_dir / CREDENTIAL_NAME if credentials_dir else None
        self._token: str | None = None
        self.stored = StoredToken(None, "none")
        self.reload()

    @property
    def token(self) -> str | None:
        """The token itself, for the OBS client only; never log or send it."""
        return self._token

    def reload(self) -> None:
        """Read the token from the state file, else from the credential."""
        sources: tuple[tuple[Path | None, TokenSource, str], ...] = (
            (self._path, "state_dir", _REPLACE_FILE),
            (self._credential, "credential", _FIX_CREDENTIAL),
        )
        for path, source, remedy in sources:
            if path is None:
                continue
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:
                continue
            except OSError as exc:
                # A token file the daemon cannot read is a problem to show, not a reason to
                # stop: status, history and a fresh token all still work.
                self._token = None
                self.stored = StoredToken(None, source, explain(exc, remedy))
                return
            if not text.strip():
                continue  # An empty file (e.g. systemd/obsd.tmpfiles.conf's placeholder).
            try:
                self._token, info = inspect_token(text)
            except TokenError as exc:
                self._token = None
                self.stored = StoredToken(None, source, f"{path}: {exc}")
            else:
                self.stored = StoredToken(info, source)
            return
        self._token = None
        self.stored = StoredToken(None, "none")

    def replace(self, token: str | None) -> None:
        """Store a normalized token atomically (0600), or remove it with None."""
        if token is None:
            self._path.unlink(missing_ok=True)
        else:
            temporary = self._path.with_name(TOKEN_FILE + ".tmp")
            fd = os.open(
                temporary,
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
                0o600,
            )
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, token.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self._path)
        fsync_dir(self._path.parent)
        self.reload()
