"""İTÜ's single sign-on as the simulator plays it (no sockets): form, identities, cookies, JWT.

The flow, as public clients reconstruct it (obs-facts.md, "Login and token refresh"):

1. `GET /login/auth/login?ReturnUrl=/ogrenci/` redirects to `/Login.aspx?subSessionId=…`
   (on the real service another host, girisv3.itu.edu.tr; here the same one).
2. That page is an ASP.NET form with `__VIEWSTATE`, `__VIEWSTATEGENERATOR`,
   `__EVENTVALIDATION` and a relative `action`.
3. Posting the user name and password to the action: a wrong pair gets the form again (200);
   a right one sets `LoginCookie` and redirects to `/ogrenci/`, or, for a student with several
   identities (a double major), answers a page of `/Login.aspx?identityGuid=…` links first.
4. `GET /ogrenci/` with `LoginCookie` sets `OgrenciCookie`.
5. `GET /ogrenci/auth/jwt` with `OgrenciCookie` answers the bare JWT, or the login form once
   the session has expired (`SimConfig.session_lifetime_s`).

Passwords never reach the request record: the app records a login POST's body redacted.
"""

from __future__ import annotations

import html
import secrets
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, quote, urlsplit

from obsd.core.login_pages import (
    BUTTON_FIELD,
    BUTTON_VALUE,
    JWT_PATH,
    PASSWORD_FIELD,
    START_PATH,
    STUDENT_HOME_PATH,
    USER_FIELD,
)
from obsd.core.timing import NS
from obsd.sim.config import SimConfig, Student
from obsd.sim.http11 import HttpRequest, Reply
from obsd.sim.tokens import issue_token

FORM_PATH: Final = "/Login.aspx"
LOGIN_COOKIE: Final = "LoginCookie"
STUDENT_COOKIE: Final = "OgrenciCookie"
PENDING_COOKIE: Final = "ASP.NET_SessionId"
HTML: Final = "text/html; charset=utf-8"
TEXT: Final = "text/plain; charset=utf-8"
WRONG_PASSWORD_TEXT: Final = "Kullanıcı adı veya şifre hatalı. / Wrong user name or password."


@dataclass
class _Session:
    subject: str
    expires_ns: int
    identity: str | None


@dataclass
class _Pending:
    """A login whose password was right, waiting for the student to pick an identity."""

    student: Student
    guids: dict[str, str]  # identityGuid -> the identity's name


def cookies_of(request: HttpRequest) -> dict[str, str]:
    """The request's cookies by name."""
    found: dict[str, str] = {}
    for part in request.headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            found[name] = value
    return found


def _page(status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, text.encode(), headers, content_type=HTML)


def _redirect(location: str, *cookies: str) -> Reply:
    headers = (("Location", location), *(("Set-Cookie", c) for c in cookies))
    return _page(302, f'<a href="{html.escape(location)}">moved</a>', headers)


def _cookie(name: str, value: str) -> str:
    return f"{name}={value}; path=/; HttpOnly"


class SingleSignOn:
    """The login pages and the JWT endpoint of one simulated İTÜ."""

    def __init__(self, config: SimConfig, key: bytes) -> None:
        self._config = config
        self._key = key
        self._students = {s.login.username: s for s in config.students if s.login is not None}
        # subSessionId -> the view state its form was served with (ASP.NET checks it back).
        self._forms: dict[str, str] = {}
        self._pending: dict[str, _Pending] = {}
        self._logins: dict[str, _Session] = {}
        self._sessions: dict[str, _Session] = {}

    def routes(self) -> dict[str, str]:
        """Path -> method of the endpoints served here."""
        return {START_PATH: "GET", FORM_PATH: "GET POST", STUDENT_HOME_PATH: "GET", JWT_PATH: "GET"}

    def respond(self, request: HttpRequest, now_ns: int) -> tuple[Reply, str | None]:
        """Answer one request of the flow at true time `now_ns`; the reply and its subject."""
        path = request.path
        if path == START_PATH:
            return self._start(), None
        if path == FORM_PATH and request.method == "POST":
            return self._submit(request, now_ns)
        if path == FORM_PATH:
            return self._form_or_identity(request, now_ns)
        if path == STUDENT_HOME_PATH:
            return self._home(request, now_ns)
        return self._jwt(request, now_ns)

    def _start(self) -> Reply:
        sub_session = secrets.token_hex(16)
        self._forms[sub_session] = secrets.token_urlsafe(24)
        return _redirect(
            f"{FORM_PATH}?subSessionId={sub_session}&currentURL={quote(STUDENT_HOME_PATH, '')}"
        )

    def form_page(self, sub_session: str, error: str = "") -> Reply:
        """The ASP.NET login form of `sub_session` (a fresh view state each time)."""
        view_state = self._forms[sub_session] = secrets.token_urlsafe(24)
        action = html.escape(f"./Login.aspx?subSessionId={sub_session}&currentURL=%2fogrenci%2f")
        hidden = "".join(
            f'<input type="hidden" name="{name}" id="{name}" value="{html.escape(value)}" />'
            for name, value in (
                ("__VIEWSTATE", view_state),
                ("__VIEWSTATEGENERATOR", "C2EE9ABB"),
                ("__EVENTVALIDATION", "ev" + view_state[:8]),
            )
        )
        message = f'<span class="error">{html.escape(error)}</span>' if error else ""
        return _page(
            200,
            "<!DOCTYPE html><html><head><title>İTÜ Giriş</title></head><body>"
            f'<form method="post" action="{action}" id="form1">{hidden}{message}'
            f'<input name="{USER_FIELD}" type="text" />'
            f'<input name="{PASSWORD_FIELD}" type="password" />'
            f'<input type="submit" name="{BUTTON_FIELD}" value="{BUTTON_VALUE}" />'
            "</form></body></html>",
        )

    def _form_or_identity(self, request: HttpRequest, now_ns: int) -> tuple[Reply, str | None]:
        query = parse_qs(urlsplit(request.target).query)
        if "identityGuid" in query:
            return self._identity_chosen(request, query["identityGuid"][0], now_ns)
        sub_session = query.get("subSessionId", [""])[0]
        if sub_session not in self._forms:
            return self._start(), None  # An unknown session starts over, as the real one does.
        return self.form_page(sub_session), None

    def _submit(self, request: HttpRequest, now_ns: int) -> tuple[Reply, str | None]:
        sub_session = parse_qs(urlsplit(request.target).query).get("subSessionId", [""])[0]
        fields = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        if self._forms.get(sub_session) is None or fields.get("__VIEWSTATE") != self._forms.get(
            sub_session
        ):
            return _page(500, "<html><body>Validation of viewstate MAC failed.</body></html>"), None
        student = self._students.get(fields.get(USER_FIELD, ""))
        login = student.login if student is not None else None
        if student is None or login is None or fields.get(PASSWORD_FIELD) != login.password:
            return self.form_page(sub_session, WRONG_PASSWORD_TEXT), None
        if len(login.identities) > 1:
            guids = {secrets.token_hex(8): name for name in login.identities}
            pending = secrets.token_hex(16)
            self._pending[pending] = _Pending(student, guids)
            links = "".join(
                f'<li><a href="{FORM_PATH}?identityGuid={guid}">{html.escape(name)}</a></li>'
                for guid, name in guids.items()
            )
            page = (
                "<html><head><title>SelectIdentity</title></head><body>"
                f'<ul id="identities">{links}</ul></body></html>'
            )
            return _page(200, page, (("Set-Cookie", _cookie(PENDING_COOKIE, pending)),)), None
        identity = login.identities[0] if login.identities else None
        return self._logged_in(student, identity, now_ns), student.subject

    def _identity_chosen(
        self, request: HttpRequest, guid: str, now_ns: int
    ) -> tuple[Reply, str | None]:
        pending = self._pending.get(cookies_of(request).get(PENDING_COOKIE, ""))
        if pending is None or guid not in pending.guids:
            return self._start(), None
        del self._pending[cookies_of(request)[PENDING_COOKIE]]
        return self._logged_in(
            pending.student, pending.guids[guid], now_ns
        ), pending.student.subject

    def _logged_in(self, student: Student, identity: str | None, now_ns: int) -> Reply:
        cookie = secrets.token_urlsafe(24)
        expires = now_ns + round(self._config.session_lifetime_s * NS)
        self._logins[cookie] = _Session(student.subject, expires, identity)
        return _redirect(STUDENT_HOME_PATH, _cookie(LOGIN_COOKIE, cookie))

    def _home(self, request: HttpRequest, now_ns: int) -> tuple[Reply, str | None]:
        login = self._logins.get(cookies_of(request).get(LOGIN_COOKIE, ""))
        if login is None or login.expires_ns <= now_ns:
            return self._start(), None
        cookie = secrets.token_urlsafe(24)
        self._sessions[cookie] = login
        page = "<html><head><title>OBS</title></head><body>Öğrenci</body></html>"
        headers = (("Set-Cookie", _cookie(STUDENT_COOKIE, cookie)),)
        return _page(200, page, headers), login.subject

    def _jwt(self, request: HttpRequest, now_ns: int) -> tuple[Reply, str | None]:
        session = self._sessions.get(cookies_of(request).get(STUDENT_COOKIE, ""))
        if session is None or session.expires_ns <= now_ns:
            # The session is gone: what comes back is the login form, with a 200.
            sub_session = secrets.token_hex(16)
            return self.form_page(sub_session), None
        token = issue_token(session.subject, now_ns / NS, key=self._key)
        return Reply(200, token.encode(), content_type=TEXT), session.subject

    def cookies_issued(self) -> list[str]:
        """Every session cookie value handed out, for tests that look for leaks."""
        return [*self._logins, *self._sessions, *self._pending]

    @staticmethod
    def redacted(request: HttpRequest) -> bytes:
        """A login POST's body as the record keeps it: without the password."""
        fields = parse_qs(request.body.decode("utf-8", "replace"))
        if PASSWORD_FIELD in fields:
            fields[PASSWORD_FIELD] = ["(hidden)"]
        return "&".join(f"{k}={v[0]}" for k, v in fields.items()).encode()
