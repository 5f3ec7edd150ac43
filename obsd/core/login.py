"""İTÜ credentials as obsd keeps them (pure): what they are, how they are written, what shows.

The password is the student's İTÜ password: it opens e-mail and grades as well as OBS. So it
has no `repr` that shows it, travels in one request (`login`) and one file (or credential),
and everything else — replies, events, `config` — holds a `LoginInfo` instead.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal

import msgspec

# Far beyond İTÜ's user names and passwords; a bound for what a request may carry.
MAX_USERNAME: Final = 64
MAX_PASSWORD: Final = 256
MAX_IDENTITY: Final = 128
# What a user name, password or identity may not contain: a newline would split the
# credentials file's lines (and move part of a password into the identity, which is shown).
NO_CONTROL: Final = r"^[^\x00-\x1f\x7f]*$"

# Where the credentials in use came from: `obsctl login` (the state dir), systemd, or nowhere.
LoginSource = Literal["state_dir", "credential", "none"]


class CredentialsError(ValueError):
    """Stored credentials cannot be read; the message says what to fix."""


class Credentials:
    """A user name, its password and the identity to choose; never shown whole."""

    __slots__ = ("identity", "password", "username")

    def __init__(self, username: str, password: str, identity: str | None = None) -> None:
        self.username = username
        self.password = password
        self.identity = identity

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credentials) and (
            (self.username, self.password, self.identity)
            == (other.username, other.password, other.identity)
        )

    __hash__ = None  # type: ignore[assignment]


class LoginInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What may be shown of the credentials: that they are set, the user name, the identity."""

    configured: bool
    username: str | None = None
    identity: str | None = None
    source: LoginSource = "none"
    problem: str | None = None


def parse_credentials(text: str) -> Credentials:
    """Credentials from their file: the user name, the password, the identity (optional)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) not in (2, 3) or not lines[0].strip() or not lines[1]:
        raise CredentialsError(
            "write the İTÜ user name on the first line and the password on the second "
            "(an identity to choose, for a double major, may follow on a third)"
        )
    identity = lines[2].strip() if len(lines) == 3 and lines[2].strip() else None
    return Credentials(lines[0].strip(), lines[1].rstrip("\r"), identity)


def credentials_text(credentials: Credentials) -> str:
    """The file's text for `credentials` (parse_credentials reads it back)."""
    lines = [credentials.username, credentials.password]
    if credentials.identity:
        lines.append(credentials.identity)
    return "\n".join(lines) + "\n"


def shown(credentials: Credentials | None, source: LoginSource) -> LoginInfo:
    """The LoginInfo of what is in use."""
    if credentials is None:
        return LoginInfo(configured=False)
    return LoginInfo(
        configured=True,
        username=credentials.username,
        identity=credentials.identity,
        source=source,
    )


class LoginFailure(StrEnum):
    """Why a login or a re-mint gave no token; each is an error code of its own."""

    WRONG_PASSWORD = "LOGIN_WRONG_PASSWORD"
    FORM_AGAIN = "LOGIN_FORM_AGAIN"
    NOT_A_TOKEN = "LOGIN_NOT_A_TOKEN"
    SESSION_EXPIRED = "LOGIN_SESSION_EXPIRED"
    NO_IDENTITY = "LOGIN_NO_IDENTITY"
    UNREACHABLE = "LOGIN_UNREACHABLE"
    PAGE_CHANGED = "LOGIN_PAGE_CHANGED"


class LoginStep(msgspec.Struct, frozen=True):
    """One request of the login flow: what it was for and what came back (never a secret)."""

    what: str
    method: str
    url: str  # scheme, host and path: the query holds session identifiers
    status: int
    redirects: int
