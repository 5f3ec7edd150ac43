"""`configure`: a checked patch of the plan (and the token), recorded before it is answered."""

from __future__ import annotations

import anyio.to_thread
from msgspec import UNSET, UnsetType

from obsd.core.config import ConfigError, apply_patch
from obsd.core.events import ConfigChangedPayload
from obsd.core.protocol import Configure, ErrorCode, ProtocolError
from obsd.core.replies import ConfigReply
from obsd.core.token import TokenError, TokenInfo, expired, inspect_token
from obsd.daemon.context import Caller, Context
from obsd.daemon.ops.reads import config_reply

TOKEN_FIELD = "$.config.token"


def _checked_token(text: str, ctx: Context) -> str:
    try:
        token, info = inspect_token(text)
    except TokenError as exc:
        raise ConfigError(TOKEN_FIELD, str(exc)) from None
    if expired(info, ctx.now()):
        raise ConfigError(
            TOKEN_FIELD,
            f"the token expired at {info.exp}; log in to OBS again and paste a fresh one",
        )
    return token


async def configure(ctx: Context, request: Configure, caller: Caller) -> ConfigReply:
    """Apply the patch; a token is stored (0600) only once the change is sure to be recorded."""
    patch = request.config
    if not patch.changed_fields():
        raise ProtocolError(
            ErrorCode.VALIDATION_ERROR,
            "config is empty: give at least one field to change - at `$.config`",
        )
    config = apply_patch(ctx.state.config, patch, ctx.now())
    token_info: TokenInfo | UnsetType | None = UNSET
    if patch.token is not UNSET:
        token = None if patch.token is None else _checked_token(patch.token, ctx)
        # Refuse before touching the token file if the change could not be recorded.
        ctx.journal.log.check_writable()
        await anyio.to_thread.run_sync(ctx.tokens.replace, token)
        # Clearing falls back to a systemd credential, if there is one: record what is in use.
        token_info = ctx.tokens.stored.info
    await ctx.journal.append(
        ConfigChangedPayload(
            actor=caller.actor, changed=patch.changed_fields(), config=config, token=token_info
        )
    )
    return config_reply(ctx)
