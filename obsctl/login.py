"""`obsctl login`: the İTÜ user name and password, read the way a password must be.

From a terminal, the password is asked for without echo (getpass); from a pipe, the first
line is the user name and the second the password. Never from an argument or an environment
variable: both show in `ps` and end up in shell history or the journal.
"""

from __future__ import annotations

import getpass
import sys
from typing import Any, TextIO

from obsctl.configure import UsageError


def read_credentials(stdin: TextIO, prompt_to: TextIO) -> tuple[str, str]:
    """The user name and the password, from the terminal (no echo) or two lines of stdin."""
    if stdin.isatty():
        print("İTÜ user name: ", end="", file=prompt_to, flush=True)
        username = stdin.readline().strip()
        password = getpass.getpass("İTÜ password (not shown): ", stream=prompt_to)
    else:
        username = stdin.readline().strip()
        password = stdin.readline().rstrip("\r\n")
    if not username or not password:
        raise UsageError("give the İTÜ user name, then the password (from a pipe: one per line)")
    return username, password


def login_fields(args: Any) -> dict[str, Any]:
    """The `login` request's fields, asked for now."""
    username, password = read_credentials(sys.stdin, sys.stderr)
    fields: dict[str, Any] = {"username": username, "password": password}
    if args.identity:
        fields["identity"] = args.identity
    return fields
