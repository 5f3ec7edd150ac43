"""Logging in to İTÜ over HTTP for a fresh OBS token, and minting another from the session.

The pages are read by obsd/core/login_pages.py; this module only walks them with one httpx
client, whose cookie jar is the session and lives in memory only: cookies are secrets, like
the password, and never reach a file, a log line or an event. Every failure is one
`LoginFailed` with a code; `steps` says what each request got (the path only: a query holds
session identifiers), so that `obsctl login --check` can show the flow without its secrets.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

import httpx
import msgspec

from obsd.core.login import LoginFailure, LoginStep
from obsd.core.login_pages import (
    JWT_PATH,
    START_PATH,
    STUDENT_HOME_PATH,
    Identity,
    LoginPageError,
    choose_identity,
    form_fields,
    identities,
    is_login_form,
    jwt_of,
    login_form,
)

LOGIN_URL: Final = f"{START_PATH}?ReturnUrl={STUDENT_HOME_PATH}"
# What a browser's XHR sends: the token endpoint answers the bare JWT to it.
JWT_HEADERS: Final = {
    "X-Requested-With": "XMLHttpRequest",
    "Accept": "application/json, text/plain, */*",
}
# The login's pages are small and quick; one that takes longer is a service in trouble.
LOGIN_TIMEOUT_S: Final = 20.0
# ASP.NET and the single sign-on redirect a few times; more is a loop.
MAX_REDIRECTS: Final = 10


class LoginFailed(Exception):
    """The flow stopped; `code` says why, the message what to do, `steps` how far it got."""

    def __init__(self, code: LoginFailure, message: str, steps: list[LoginStep]) -> None:
        super().__init__(message)
        self.code = code
        self.steps = steps


class Minted(msgspec.Struct, frozen=True):
    """A token from the flow, and what the flow saw on the way."""

    token: str
    identity: str | None
    identities: list[str]
    steps: list[LoginStep]


def _shown(url: httpx.URL) -> str:
    parts = urlsplit(str(url))
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class ItuSession:
    """One cookie session with İTÜ's single sign-on, for one student, in memory."""

    def __init__(self, base_url: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            timeout=LOGIN_TIMEOUT_S,
            transport=transport,
        )
        self._steps: list[LoginStep] = []

    async def aclose(self) -> None:
        """Forget the session: its cookies go with the client."""
        await self._client.aclose()

    def _fail(self, code: LoginFailure, message: str) -> LoginFailed:
        return LoginFailed(code, message, list(self._steps))

    async def _request(self, what: str, method: str, url: str, **kwargs: object) -> httpx.Response:
        try:
            response = await self._client.request(method, url, **kwargs)  # type: ignore[arg-type]
        except (httpx.TooManyRedirects, httpx.InvalidURL, httpx.UnsupportedProtocol):
            raise self._fail(
                LoginFailure.PAGE_CHANGED,
                f"{what}: a redirect loop, or a link that is no URL; İTÜ may have changed it",
            ) from None
        except httpx.HTTPError as exc:
            raise self._fail(
                LoginFailure.UNREACHABLE,
                f"{what}: the single sign-on cannot be reached ({type(exc).__name__}); "
                "check the network, or try again later",
            ) from None
        self._steps.append(
            LoginStep(
                what, method, _shown(response.url), response.status_code, len(response.history)
            )
        )
        if response.status_code >= 500:
            raise self._fail(
                LoginFailure.UNREACHABLE,
                f"{what}: the single sign-on answered {response.status_code}; try again later",
            )
        return response

    async def log_in(self, username: str, password: str, identity: str | None) -> Minted:
        """The whole flow: form, password, identity, the student page, the token."""
        self._steps = []
        self._client.cookies.clear()
        page = await self._request("login page", "GET", LOGIN_URL)
        try:
            form = login_form(page.text, str(page.url))
        except LoginPageError as exc:
            raise self._fail(LoginFailure.PAGE_CHANGED, f"{exc}; İTÜ may have changed it") from None
        answer = await self._request(
            "user name and password",
            "POST",
            form.action,
            data=form_fields(form, username, password),
            headers={"Referer": str(page.url)},
        )
        if is_login_form(answer.text) and not answer.history:
            # The form again, straight back: a wrong pair (after redirects it is FORM_AGAIN).
            raise self._fail(
                LoginFailure.WRONG_PASSWORD,
                "İTÜ refused the user name or password; obsctl login to set them again",
            )
        if is_login_form(answer.text):
            raise self._fail(
                LoginFailure.FORM_AGAIN,
                "the login form came back after the password was taken: the session did not "
                "hold; try again, and check obsctl login --check",
            )
        offered = identities(answer.text, str(answer.url))
        chosen: Identity | None = None
        if offered:
            try:
                chosen = choose_identity(offered, identity)
            except LoginPageError as exc:
                raise self._fail(
                    LoginFailure.NO_IDENTITY, f"{exc}; obsctl login --identity to choose one"
                ) from None
            answer = await self._request("identity", "GET", chosen.url)
            if is_login_form(answer.text):
                raise self._fail(
                    LoginFailure.FORM_AGAIN, "the login form came back after the identity choice"
                )
        minted = await self._mint("token", LoginFailure.FORM_AGAIN)
        return Minted(
            token=minted,
            identity=chosen.label if chosen else None,
            identities=[c.label for c in offered],
            steps=list(self._steps),
        )

    async def remint(self) -> Minted:
        """Another token from the session, without the password (LoginFailed when it is gone)."""
        self._steps = []
        token = await self._mint("token from the session", LoginFailure.SESSION_EXPIRED)
        return Minted(token=token, identity=None, identities=[], steps=list(self._steps))

    async def _mint(self, what: str, when_form: LoginFailure) -> str:
        answer = await self._request(what, "GET", JWT_PATH, headers=JWT_HEADERS)
        if is_login_form(answer.text):
            expired = when_form == LoginFailure.SESSION_EXPIRED
            raise self._fail(
                when_form,
                "the session has expired: a full login is needed"
                if expired
                else "the token endpoint answered the login form: the login did not take",
            )
        try:
            return jwt_of(answer.content)
        except LoginPageError as exc:
            raise self._fail(LoginFailure.NOT_A_TOKEN, str(exc)) from None
