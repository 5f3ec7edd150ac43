"""A waiting run's fresh tokens: the İTÜ session, the schedule, and what each refresh gave.

The schedule is the core's (obsd/core/token_refresh.py); this holds the one thing it cannot:
the single sign-on session of the run's logins, whose cookies live in memory only. The run
driver asks `due` as it waits and records what `refresh` hands back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import anyio

from obsd.adapters.itu_login import ItuSession, LoginFailed, Minted
from obsd.adapters.obs_client import ObsClient
from obsd.core.events import TokenRefreshedPayload, TokenRefreshFailedPayload
from obsd.core.login import Credentials, LoginFailure, LoginStep
from obsd.core.runs import RunState
from obsd.core.timing import epoch_ns, instant
from obsd.core.token import TokenError, TokenInfo, inspect_token, judge_expiry
from obsd.core.token_refresh import LOGIN_BUDGET_S, Refresh, RefreshKind, next_refresh, too_late
from obsd.daemon.instruments import Instruments


class Keys(Protocol):
    """What a run reaches OBS with: the token, İTÜ credentials, and where a fresh token goes."""

    def token(self) -> str | None:
        """The OBS token in use, if any."""
        ...

    def token_info(self) -> TokenInfo | None:
        """What may be shown of it."""
        ...

    def credentials(self) -> Credentials | None:
        """The İTÜ credentials kept by `login`, if any."""
        ...

    def keep(self, token: str) -> None:
        """Make a fresh token the one in use (OSError if it cannot be stored)."""
        ...


class TokenRefresher:
    """The logins of one run's wait, and the session they share."""

    def __init__(self, run_id: str, keys: Keys, instruments: Instruments) -> None:
        self._run_id = run_id
        self._keys = keys
        self._instruments = instruments
        self._session: ItuSession | None = None
        # The token this run's OBS client sends, once a refresh set it (else the stored one's).
        self._sent: TokenInfo | None = None

    async def aclose(self) -> None:
        """Forget the session (its cookies)."""
        if self._session is not None:
            await self._session.aclose()
            self._session = None

    def short_token_warning(self, run: RunState, wall_ns: int) -> str | None:
        """Without credentials, whether the token in use will not last until the target."""
        info = self._keys.token_info()
        if run.requests or info is None or self._keys.credentials() is not None:
            return None
        verdict = judge_expiry(info, instant(run.target_ns), instant(wall_ns))
        if verdict.error is None:
            return None
        return (
            f"{verdict.error}, or keep the İTÜ credentials (obsctl login) and obsd logs in itself"
        )

    def due(self, run: RunState, true_now_ns: int) -> Refresh | None:
        """The refresh the wait makes next, while login traffic is still allowed."""
        if self._keys.credentials() is None:
            return None
        created_ns = epoch_ns(datetime.fromisoformat(run.created_at))
        planned = next_refresh(
            run.target_ns, created_ns, run.refreshes, has_session=self._session is not None
        )
        if planned is None or too_late(run.target_ns, max(true_now_ns, planned.at_ns)):
            return None
        return planned

    async def refresh(
        self, run: RunState, kind: RefreshKind, at_ns: int, obs: ObsClient
    ) -> tuple[TokenRefreshedPayload | TokenRefreshFailedPayload, str | None]:
        """Log in (or mint from the session); the event to record, and a warning if any.

        On success `obs` sends the fresh token from now on; a failure keeps the old one.
        """
        session = self._session or self._instruments.sign_on(run.config)
        self._session = session
        try:
            minted, info = await self._minted(session, kind)
        except _Failed as failed:
            if kind == RefreshKind.LOGIN or failed.code == LoginFailure.SESSION_EXPIRED:
                await self.aclose()
            return (
                TokenRefreshFailedPayload(
                    run_id=self._run_id,
                    kind=kind,
                    at_ns=at_ns,
                    code=failed.code,
                    message=failed.message,
                    steps=failed.steps,
                    kept=self._sent or self._keys.token_info(),
                ),
                None,
            )
        warning = None
        current = self._sent or self._keys.token_info()
        if current is not None and current.exp and info.exp and info.exp <= current.exp:
            info = current  # The token in use lasts longer: it stays.
        else:
            obs.use_token(minted.token)
            self._sent = info
            try:
                await anyio.to_thread.run_sync(self._keys.keep, minted.token)
            except OSError as exc:
                warning = f"the fresh token is used but could not be stored: {exc}"
        refreshed = TokenRefreshedPayload(
            run_id=self._run_id,
            kind=kind,
            at_ns=at_ns,
            token=info,
            identity=minted.identity,
            steps=minted.steps,
        )
        return refreshed, warning

    async def _minted(self, session: ItuSession, kind: RefreshKind) -> tuple[Minted, TokenInfo]:
        credentials = self._keys.credentials()
        assert credentials is not None
        try:
            with anyio.fail_after(LOGIN_BUDGET_S):
                if kind == RefreshKind.LOGIN:
                    minted = await session.log_in(
                        credentials.username, credentials.password, credentials.identity
                    )
                else:
                    minted = await session.remint()
            _, info = inspect_token(minted.token)
        except LoginFailed as failed:
            raise _Failed(failed.code, str(failed), failed.steps) from None
        except TimeoutError:
            raise _Failed(
                LoginFailure.UNREACHABLE,
                f"the login took longer than {LOGIN_BUDGET_S:.0f} s; the single sign-on is slow",
                [],
            ) from None
        except TokenError as exc:
            raise _Failed(
                LoginFailure.NOT_A_TOKEN, f"the new token is unusable: {exc}", []
            ) from None
        except Exception as exc:  # A page nobody foresaw must not end the run.
            raise _Failed(
                LoginFailure.PAGE_CHANGED,
                f"the login met something unexpected ({type(exc).__name__}); İTÜ may have "
                "changed its pages: obsctl login --check",
                [],
            ) from None
        return minted, info


class _Failed(Exception):
    def __init__(self, code: LoginFailure, message: str, steps: list[LoginStep]) -> None:
        super().__init__(message)
        self.code, self.message, self.steps = code, message, steps
