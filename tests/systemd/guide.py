"""docs/operations.md as the systemd tests read it: its shell blocks, taken from the page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

GUIDE: Final = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
FENCED: Final = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


def section(start: str, end: str) -> str:
    """The guide's text from the heading or phrase `start` up to `end`."""
    text = GUIDE.read_text()
    return text[text.index(start) : text.index(end, text.index(start))]


def blocks(start: str, end: str) -> list[str]:
    """The shell blocks of the guide's text from `start` up to `end`."""
    return FENCED.findall(section(start, end))


def install_blocks() -> tuple[str, str]:
    """§2's shell blocks: those before "Check it:" (install) and the one after (check)."""
    before, after = section("## 2. Install", "### Where the token goes").split("Check it:", 1)
    install = "\n".join(FENCED.findall(before))
    assert install.count("REPOSITORY_URL") == 1, "the guide clones from one placeholder URL"
    # The one stand-in: this checkout (read-only at /src in the container) for the URL.
    return install.replace("REPOSITORY_URL", "/src"), FENCED.findall(after)[0]
