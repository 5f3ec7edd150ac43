"""Reading İTÜ's login pages (pure): the ASP.NET form, the identity choice, the JWT.

Every client that logs in to İTÜ reads the same few things off these pages (obs-facts.md,
"Login and token refresh"); each is read here once, from text, so that a changed page is one
place to fix and one test to update. A page that does not read as expected is a
`LoginPageError` naming what was missing, never a guess.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Final
from urllib.parse import urljoin

import msgspec

# Where the flow starts (it redirects to the single sign-on), where it lands, and the
# endpoint that answers the bare JWT to a logged-in session.
START_PATH: Final = "/login/auth/login"
STUDENT_HOME_PATH: Final = "/ogrenci/"
JWT_PATH: Final = "/ogrenci/auth/jwt"
# The form fields the single sign-on's login button posts.
USER_FIELD: Final = "ctl00$ContentPlaceHolder1$tbUserName"
PASSWORD_FIELD: Final = "ctl00$ContentPlaceHolder1$tbPassword"
BUTTON_FIELD: Final = "ctl00$ContentPlaceHolder1$btnLogin"
BUTTON_VALUE: Final = "Giriş / Login"
# ASP.NET checks these come back as served.
HIDDEN_FIELDS: Final = ("__VIEWSTATE", "__VIEWSTATEGENERATOR", "__EVENTVALIDATION")
# The link of one identity on the SelectIdentity page.
IDENTITY_LINK: Final = "identityGuid="
# A JWT is three base64url parts; OBS's are a few hundred characters.
MAX_JWT_CHARS: Final = 8192
_JWT_ALPHABET: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
)


class LoginPageError(ValueError):
    """A page of the login flow is not what the flow expects; the message says what."""


class LoginForm(msgspec.Struct, frozen=True):
    """Where the login form posts, and the hidden fields it must post back."""

    action: str
    hidden: dict[str, str]


class Identity(msgspec.Struct, frozen=True):
    """One identity a student may log in as (a double major has several)."""

    label: str
    url: str


class _Collector(HTMLParser):
    """The forms, inputs and links of a page, in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, str]] = []
        self.inputs: list[dict[str, str]] = []
        self.links: list[tuple[str, list[str]]] = []
        self._link: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(values)
        elif tag == "input":
            self.inputs.append(values)
        elif tag == "a" and "href" in values:
            self._link = (values["href"], [])
            self.links.append(self._link)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._link = None

    def handle_data(self, data: str) -> None:
        if self._link is not None:
            self._link[1].append(data)


def _collected(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    collector.close()
    return collector


def is_login_form(page: str) -> bool:
    """Whether `page` is the login form (also what a wrong password or a lost session shows)."""
    return any(i.get("name") == PASSWORD_FIELD for i in _collected(page).inputs)


def login_form(page: str, page_url: str) -> LoginForm:
    """The login form of `page`, its action resolved against `page_url`."""
    collected = _collected(page)
    if not any(i.get("name") == PASSWORD_FIELD for i in collected.inputs):
        raise LoginPageError("the login page has no password field")
    action = next((f.get("action") for f in collected.forms if f.get("action")), None)
    if action is None:
        raise LoginPageError("the login page's form has no action")
    hidden = {
        i["name"]: i.get("value", "")
        for i in collected.inputs
        if i.get("type", "").lower() == "hidden" and i.get("name")
    }
    missing = [name for name in HIDDEN_FIELDS if name not in hidden]
    if missing:
        raise LoginPageError(f"the login page lacks {', '.join(missing)}")
    # The parser has decoded the attribute's entities already (&amp; in the query): once only.
    return LoginForm(action=urljoin(page_url, action), hidden=hidden)


def form_fields(form: LoginForm, username: str, password: str) -> dict[str, str]:
    """What the login button posts: the hidden fields back, the user name and the password."""
    return {
        **form.hidden,
        USER_FIELD: username,
        PASSWORD_FIELD: password,
        BUTTON_FIELD: BUTTON_VALUE,
    }


def identities(page: str, page_url: str) -> list[Identity]:
    """The identities a SelectIdentity page offers, in its order; none on any other page."""
    return [
        Identity(label=" ".join("".join(text).split()), url=urljoin(page_url, href))
        for href, text in _collected(page).links
        if IDENTITY_LINK in href
    ]


def choose_identity(choices: list[Identity], wanted: str | None) -> Identity:
    """The identity whose label contains `wanted` (case-insensitive), else the first."""
    if not choices:
        raise LoginPageError("the identity page offers no identity")
    if wanted is None:
        return choices[0]  # The page lists the active identity first.
    matching = [c for c in choices if wanted.casefold() in c.label.casefold()]
    if not matching:
        offered = "; ".join(c.label for c in choices)
        raise LoginPageError(f"no identity matches {wanted!r}; the page offers: {offered}")
    return matching[0]


def jwt_of(body: bytes) -> str:
    """The bare JWT the token endpoint answers; LoginPageError for anything else."""
    text = body.decode("utf-8", "replace").strip().strip('"')
    if not text:
        raise LoginPageError("the token endpoint answered an empty body")
    if text.startswith("<") or "<html" in text[:200].lower():
        raise LoginPageError("the token endpoint answered an HTML page, not a token")
    if len(text) > MAX_JWT_CHARS or text.count(".") != 2 or not set(text) <= _JWT_ALPHABET:
        raise LoginPageError("the token endpoint answered something that is not a JWT")
    return text
