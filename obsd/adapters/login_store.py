"""Where the İTÜ credentials live: a 0600 file in the state dir, or a systemd credential.

Like the token (token_store.py): `obsctl login` writes the file, which takes precedence; on a
VPS the better place is an encrypted credential (`LoadCredentialEncrypted=itu-login:...`),
which never lies on the disk in the clear.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, cast

from obsd.adapters.files import SecretSource, first_secret, replace_private
from obsd.core.login import (
    Credentials,
    CredentialsError,
    LoginInfo,
    LoginSource,
    credentials_text,
    parse_credentials,
    shown,
)

LOGIN_FILE: Final = "itu-login"
# The name under which systemd's LoadCredential(Encrypted)= hands the credentials over.
CREDENTIAL_NAME: Final = "itu-login"
_REPLACE_FILE: Final = "remove it, then set the credentials again (obsctl login)"
_FIX_CREDENTIAL: Final = (
    "fix the file LoadCredentialEncrypted= names (docs/operations.md) and restart the service"
)


class LoginStore:
    """Loads, replaces and clears the credentials; those set with `obsctl login` come first."""

    def __init__(self, state_dir: Path, credentials_dir: Path | None) -> None:
        self._path = state_dir / LOGIN_FILE
        self._credential = credentials_dir / CREDENTIAL_NAME if credentials_dir else None
        self._credentials: Credentials | None = None
        self.info = LoginInfo(configured=False)
        self.reload()

    @property
    def credentials(self) -> Credentials | None:
        """The credentials themselves, for the login only; never log or send them."""
        return self._credentials

    def reload(self) -> None:
        """Read the credentials from the state file, else from the credential."""
        found = first_secret(
            (
                SecretSource(self._path, "state_dir", _REPLACE_FILE),
                SecretSource(self._credential, "credential", _FIX_CREDENTIAL),
            )
        )
        self._credentials = None
        if found is None:
            self.info = LoginInfo(configured=False)
            return
        source = cast(LoginSource, found.source)
        if found.text is None:
            self.info = LoginInfo(configured=False, source=source, problem=found.problem)
            return
        try:
            self._credentials = parse_credentials(found.text)
        except CredentialsError as exc:
            path = self._path if source == "state_dir" else self._credential
            self.info = LoginInfo(configured=False, source=source, problem=f"{path}: {exc}")
        else:
            self.info = shown(self._credentials, source)

    def replace(self, credentials: Credentials | None) -> None:
        """Store credentials atomically (0600), or remove the file with None."""
        text = None if credentials is None else credentials_text(credentials).encode()
        replace_private(self._path, text)
        self.reload()
