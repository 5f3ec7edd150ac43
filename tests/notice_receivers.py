"""Where the tests' notices go: a loopback HTTP receiver for notification URLs, and a command
that records what it is handed (tests/record_notice.py)."""

from __future__ import annotations

import http.server
import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RECORD_NOTICE = Path(__file__).with_name("record_notice.py")


def record_command(out: Path, *, exit_status: int = 0) -> list[str]:
    """A notification command that appends each notice it reads to `out` (JSON lines)."""
    return [sys.executable, str(RECORD_NOTICE), str(out), str(exit_status)]


def recorded(out: Path) -> list[dict[str, Any]]:
    """What the recording command was handed, in order: {notice, environment, at_ns}."""
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines()]


class Receiver:
    """An HTTP server on loopback that keeps every POST's path and JSON body."""

    def __init__(self) -> None:
        posts: list[tuple[str, dict[str, Any]]] = []
        self.posts = posts

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                posts.append((self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]

    def url(self, scheme: str, path: str) -> str:
        """An apprise URL for this receiver: json://127.0.0.1:PORT/path, ntfy://..., ..."""
        return f"{scheme}://127.0.0.1:{self.port}/{path}"


@contextmanager
def receiver() -> Iterator[Receiver]:
    """A running Receiver, shut down afterwards."""
    server = Receiver()
    thread = threading.Thread(target=server._server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server._server.shutdown()
        server._server.server_close()
