"""Reading what an OBS JWT says about itself, without verifying it and without keeping it."""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import msgspec

BEARER_PREFIX: Final = "bearer "


class TokenError(ValueError):
    """The text is not a usable JWT; the message never contains the token."""


class TokenInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What may be shown about a token: a fingerprint and its claims' times, never the token."""

    fingerprint: str
    exp: str | None
    iat: str | None = None


# Where the token in use came from: `configure` (the state dir), systemd, or nowhere.
TokenSource = Literal["state_dir", "credential", "none"]


class StoredToken(msgspec.Struct, frozen=True):
    """What may be said of the token in use: its description and where it came from."""

    info: TokenInfo | None
    source: TokenSource
    problem: str | None = None


class _Claims(msgspec.Struct):
    exp: float | None = None
    iat: float | None = None


def normalize_token(text: str) -> str:
    """Strip the whitespace and the "Bearer " that users paste along with the token."""
    token = text.strip()
    if token[: len(BEARER_PREFIX)].lower() == BEARER_PREFIX:
        token = token[len(BEARER_PREFIX) :].strip()
    return token


def fingerprint(token: str) -> str:
    """A short, stable, non-reversible name for a token, safe to log."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:16]


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def inspect_token(text: str) -> tuple[str, TokenInfo]:
    """Normalize a pasted token and describe it; raise TokenError if it is not a JWT."""
    token = normalize_token(text)
    if not token:
        raise TokenError("token is empty")
    if any(ch.isspace() for ch in token):
        raise TokenError("token contains white space; paste only the JWT")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise TokenError(f"token is not a JWT: expected 3 dot-separated parts, got {len(parts)}")
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = msgspec.json.decode(raw, type=_Claims)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise TokenError("token is not a JWT: its payload is not base64url-encoded JSON") from None
    info = TokenInfo(fingerprint=fingerprint(token), exp=_iso(claims.exp), iat=_iso(claims.iat))
    return token, info


# A run keeps posting after the opening (retries, a full course re-tried): the token must
# outlive the target by this much, or the run would fail with 401 halfway.
EXPIRY_MARGIN: Final = timedelta(minutes=10)
# Closer than this and the user is told, so a fresh token can be fetched in time.
EXPIRY_WARNING: Final = timedelta(hours=1)


class TokenVerdict(msgspec.Struct, frozen=True):
    """Whether a token can carry a run to `target`: a refusal, or warnings only."""

    error: str | None
    warnings: list[str]


def expired(info: TokenInfo, now: datetime) -> bool:
    """Whether the token's exp claim has passed (a token without one is not known to be)."""
    return info.exp is not None and datetime.fromisoformat(info.exp) <= now


def judge_expiry(info: TokenInfo, target: datetime | None, now: datetime) -> TokenVerdict:
    """Refuse a token that expires before the target plus a margin; warn when it is close."""
    if info.exp is None:
        return TokenVerdict(None, ["the token has no exp claim; its expiry cannot be checked"])
    exp = datetime.fromisoformat(info.exp)
    if expired(info, now):
        return TokenVerdict(
            f"the token expired at {info.exp}; log in to OBS again and configure a fresh one", []
        )
    deadline = (target or now) + EXPIRY_MARGIN
    if exp <= deadline:
        when = "the target" if target else "now"
        return TokenVerdict(
            f"the token expires at {info.exp}, less than {_minutes(EXPIRY_MARGIN)} after "
            f"{when}; log in to OBS closer to the opening and configure a fresh token",
            [],
        )
    if exp <= (target or now) + EXPIRY_WARNING:
        left = _minutes(exp - (target or now))
        when = "after the target" if target else "from now"
        return TokenVerdict(None, [f"the token expires {left} {when}"])
    return TokenVerdict(None, [])


def _minutes(delta: timedelta) -> str:
    return f"{int(delta.total_seconds() // 60)} min"
