"""The token is kept in a private file (or a credential) and described, never shown."""

import base64
import json
import stat
from pathlib import Path

from obsd.adapters.token_store import CREDENTIAL_NAME, TOKEN_FILE, TokenStore


def jwt(exp: int) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256'})}.{part({'exp': exp})}.c2ln"


def test_a_stored_token_is_private_and_survives_a_restart(tmp_path: Path) -> None:
    store = TokenStore(tmp_path, None)
    store.replace(jwt(1770120000))
    assert stat.S_IMODE((tmp_path / TOKEN_FILE).stat().st_mode) == 0o600
    reloaded = TokenStore(tmp_path, None)
    assert reloaded.token == jwt(1770120000)
    assert reloaded.stored.source == "state_dir" and reloaded.stored.info is not None
    assert reloaded.stored.info.exp == "2026-02-03T12:00:00Z"


def test_a_credential_is_used_until_a_token_is_set_over_the_socket(tmp_path: Path) -> None:
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / CREDENTIAL_NAME).write_text("Bearer " + jwt(1) + "\n")
    store = TokenStore(tmp_path, credentials)
    assert (store.token, store.stored.source) == (jwt(1), "credential")
    store.replace(jwt(2))
    assert (store.token, store.stored.source) == (jwt(2), "state_dir")
    store.replace(None)
    assert (store.token, store.stored.source) == (jwt(1), "credential")


def test_an_unreadable_token_file_is_reported_not_used(tmp_path: Path) -> None:
    (tmp_path / TOKEN_FILE).write_text("secretgarbage")
    store = TokenStore(tmp_path, None)
    assert store.token is None
    assert store.stored.problem is not None and "not a JWT" in store.stored.problem
    assert "secretgarbage" not in store.stored.problem


def test_no_token_at_all(tmp_path: Path) -> None:
    store = TokenStore(tmp_path, None)
    assert store.token is None and store.stored.source == "none"


def test_an_empty_credential_placeholder_counts_as_no_token(tmp_path: Path) -> None:
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / CREDENTIAL_NAME).write_text("")
    store = TokenStore(tmp_path, credentials)
    assert (store.token, store.stored.source, store.stored.problem) == (None, "none", None)
