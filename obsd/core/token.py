"""Reading what an OBS JWT says about itself, without verifying it and without keeping it."""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime

import msgspec

BEARER_PREFIX = "bearer "


class TokenError(ValueError):
    """The text is not a usable JWT; the message never contains the token."""


class TokenInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What may be shown about a token: a fingerprint and its claims' times, never the token."""

    fingerprint: str
    exp: str | None
    iat: str | None = None


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
