"""The simulated single sign-on's own rules: ASP.NET's view-state check, one user name per
student, and a record that never keeps a password."""

from __future__ import annotations

import re

import httpx
import pytest

from obsd.core.login_pages import PASSWORD_FIELD, USER_FIELD
from obsd.sim import SimConfig, Simulator, Student
from obsd.sim.config import SimConfigError, StudentLogin, validate_config

LOGIN = StudentLogin(username="ayse", password="pw-1")


def test_a_form_posted_with_a_stale_view_state_is_refused_and_no_password_is_recorded() -> None:
    config = SimConfig(students=[Student(subject="1", login=LOGIN)])
    with Simulator(config).serve_in_thread() as sim, httpx.Client(base_url=sim.base_url) as web:
        form = web.get("/login/auth/login?ReturnUrl=/ogrenci/", follow_redirects=True)
        match = re.search(r'action="\./(Login\.aspx\?[^"]+)"', form.text)
        assert match is not None
        action = "/" + match.group(1).replace("&amp;", "&")
        fields = {"__VIEWSTATE": "stale", USER_FIELD: "ayse", PASSWORD_FIELD: "pw-1"}
        assert web.post(action, data=fields).status_code == 500
        records = sim.requests()
    (posted,) = [r for r in records if r.method == "POST"]
    assert "pw-1" not in str(posted.body) and "(hidden)" in str(posted.body)


def test_a_user_name_belongs_to_one_student() -> None:
    twice = SimConfig(
        students=[Student(subject="1", login=LOGIN), Student(subject="2", login=LOGIN)]
    )
    with pytest.raises(SimConfigError, match="user name ayse is listed twice"):
        validate_config(twice)
