"""Where the OBS token lives: a 0600 file in the state dir, or a systemd credential."""

from __future__ import annotations

from pathlib import Path
from typing import Final, cast

from obsd.adapters.files import SecretSource, first_secret, replace_private
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
        found = first_secret(
            (
                SecretSource(self._path, "state_dir", _REPLACE_FILE),
                SecretSource(self._credential, "credential", _FIX_CREDENTIAL),
            )
        )
        self._token = None
        if found is None:
            self.stored = StoredToken(None, "none")
            return
        source = cast(TokenSource, found.source)
        if found.text is None:
            self.stored = StoredToken(None, source, found.problem)
            return
        try:
            self._token, info = inspect_token(found.text)
        except TokenError as exc:
            path = self._path if source == "state_dir" else self._credential
            self.stored = StoredToken(None, source, f"{path}: {exc}")
        else:
            self.stored = StoredToken(info, source)

    def replace(self, token: str | None) -> None:
        """Store a normalized token atomically (0600), or remove it with None."""
        replace_private(self._path, None if token is None else token.encode())
        self.reload()
