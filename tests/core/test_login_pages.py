"""Reading İTÜ's login pages (pure): the form and what it posts back, the identities, the JWT."""

from __future__ import annotations

import pytest

from obsd.core.login_pages import (
    PASSWORD_FIELD,
    USER_FIELD,
    Identity,
    LoginPageError,
    choose_identity,
    form_fields,
    identities,
    is_login_form,
    jwt_of,
    login_form,
)

PAGE_URL = "https://girisv3.itu.edu.tr/Login.aspx?subSessionId=ab12&currentURL=%2fogrenci%2f"
FORM = (
    '<form method="post" action="./Login.aspx?subSessionId=ab12&amp;currentURL=%2fogrenci%2f">'
    '<input type="hidden" name="__VIEWSTATE" value="vs+/=" />'
    '<input type="hidden" name="__VIEWSTATEGENERATOR" value="C2EE9ABB" />'
    '<input type="hidden" name="__EVENTVALIDATION" value="ev" />'
    f'<input name="{USER_FIELD}" type="text" /><input name="{PASSWORD_FIELD}" type="password" />'
    "</form>"
)
IDENTITIES = (
    '<ul><li><a href="/Login.aspx?identityGuid=g1">Bilgisayar Mühendisliği (aktif)</a></li>'
    '<li><a href="/Login.aspx?identityGuid=g2">Matematik\n  Mühendisliği</a></li>'
    '<li><a href="/help">Yardım</a></li></ul>'
)


def test_the_form_posts_back_its_hidden_fields_to_its_resolved_action() -> None:
    form = login_form(FORM, PAGE_URL)
    assert form.action == (
        "https://girisv3.itu.edu.tr/Login.aspx?subSessionId=ab12&currentURL=%2fogrenci%2f"
    )
    fields = form_fields(form, "ayse", "s3cret")
    assert fields["__VIEWSTATE"] == "vs+/=" and fields["__EVENTVALIDATION"] == "ev"
    assert fields[USER_FIELD] == "ayse" and fields[PASSWORD_FIELD] == "s3cret"
    assert is_login_form(FORM) and not is_login_form(IDENTITIES)


@pytest.mark.parametrize(
    ("page", "why"),
    [
        (FORM.replace(PASSWORD_FIELD, "pw"), "no password field"),
        (FORM.replace(' action="', ' data-x="'), "no action"),
        (FORM.replace("__EVENTVALIDATION", "x"), "lacks __EVENTVALIDATION"),
    ],
)
def test_a_changed_login_page_says_what_is_missing(page: str, why: str) -> None:
    with pytest.raises(LoginPageError, match=why):
        login_form(page, PAGE_URL)


def test_identities_are_the_pages_identity_links_in_order() -> None:
    offered = identities(IDENTITIES, PAGE_URL)
    assert offered == [
        Identity(
            "Bilgisayar Mühendisliği (aktif)",
            "https://girisv3.itu.edu.tr/Login.aspx?identityGuid=g1",
        ),
        Identity("Matematik Mühendisliği", "https://girisv3.itu.edu.tr/Login.aspx?identityGuid=g2"),
    ]
    assert choose_identity(offered, None) == offered[0], "the active one comes first"
    assert choose_identity(offered, "matematik") == offered[1]
    with pytest.raises(LoginPageError, match="no identity matches 'Fizik'; the page offers: Bil"):
        choose_identity(offered, "Fizik")
    assert identities(FORM, PAGE_URL) == []


def test_the_token_endpoint_must_answer_a_bare_jwt() -> None:
    assert jwt_of(b"aaa.bbb.ccc\n") == "aaa.bbb.ccc"
    assert jwt_of(b'"aaa.bbb.ccc"') == "aaa.bbb.ccc"
    for body, why in [
        (b"", "empty"),
        (FORM.encode(), "an HTML page"),
        (b"<!DOCTYPE html><html>", "an HTML page"),
        (b"not a token", "not a JWT"),
        (b"a.b.c.d", "not a JWT"),
    ]:
        with pytest.raises(LoginPageError, match=why):
            jwt_of(body)
