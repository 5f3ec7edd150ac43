"""Notification channels on real processes and a real HTTP receiver on loopback: each delivers
or says in one line why not, gives up at its timeout, and never sees a credential."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from obsd.adapters.notifiers import (
    APPRISE_MISSING,
    CommandChannel,
    UrlChannel,
    open_channels,
    read_urls,
)
from obsd.core.notices import Notice, NoticeKind
from tests.conftest import wait_until
from tests.notice_receivers import receiver, record_command, recorded

NOTICE = Notice(
    kind=NoticeKind.RUN_DONE,
    title="obsd: run done, 1 of 1 courses added",
    message="every CRN has a final result\n21234 add: success",
    run_id="r1",
)


async def test_a_command_reads_the_notice_as_json_and_no_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    out = tmp_path / "notices"
    assert await CommandChannel(record_command(out)).deliver(NOTICE, 30) is None
    (record,) = recorded(out)
    assert record["notice"]["title"] == NOTICE.title
    assert record["notice"]["kind"] == "run_done" and record["notice"]["run_id"] == "r1"
    assert "CREDENTIALS_DIRECTORY" not in record["environment"]


async def test_a_failing_command_is_a_failed_delivery(tmp_path: Path) -> None:
    problem = await CommandChannel(record_command(tmp_path / "n", exit_status=3)).deliver(
        NOTICE, 30
    )
    assert problem is not None and problem.endswith("exited with status 3")


async def test_a_command_that_hangs_is_killed_at_the_timeout_with_what_it_started(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "child"
    # A shell that starts a child and waits for it, as a script around curl would.
    hangs = ["sh", "-c", f'sleep 600 & echo $! > "{pid_file}"; wait']
    problem = await CommandChannel(hangs).deliver(NOTICE, 0.5)
    assert problem is not None and "did not finish within" in problem and "killed" in problem
    state = Path(f"/proc/{int(pid_file.read_text())}/stat")

    def gone() -> bool:
        # Killed with its process group: reaped, or a zombie until it is, never asleep.
        try:
            return state.read_text().split(")")[1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    wait_until(gone, 10, "the command's child killed")


async def test_a_command_that_ignores_its_stdin_still_works() -> None:
    assert await CommandChannel([sys.executable, "-c", "pass"]).deliver(NOTICE, 30) is None


@pytest.mark.parametrize("scheme", ["json", "ntfy"])
async def test_a_notification_url_gets_the_title_and_message(scheme: str) -> None:
    with receiver() as http:
        channel = UrlChannel(http.url(scheme, "obsd-test"), 1)
        assert channel.check() is None
        assert await channel.deliver(NOTICE, 30) is None
        ((path, body),) = http.posts
    assert body["title"] == NOTICE.title and body["message"] == NOTICE.message
    assert "obsd-test" in path or body.get("topic") == "obsd-test"


async def test_an_unreachable_url_fails_without_naming_its_secret() -> None:
    # Port 9 on loopback (discard) is closed here: the connection is refused at once.
    channel = UrlChannel("json://user:s3cret@127.0.0.1:9/hook", 2)
    problem = await channel.deliver(NOTICE, 30)
    assert problem is not None and problem.startswith("notification URL #2 (json)")
    assert "s3cret" not in problem and "127.0.0.1" not in problem


def test_urls_are_read_one_per_line_with_comments(tmp_path: Path) -> None:
    path = tmp_path / "urls"
    path.write_text("# the student's phone\nntfy://ntfy.sh/ayse-obsd\n\n  tgram://1:a/2  \n")
    assert read_urls(path) == ["ntfy://ntfy.sh/ayse-obsd", "tgram://1:a/2"]


def test_what_cannot_be_used_is_a_problem_and_never_fatal(tmp_path: Path) -> None:
    urls = tmp_path / "urls"
    urls.write_text("bogus://nothing\njson://127.0.0.1:9/ok\n")
    channels, problems = open_channels(["no-such-notify-command"], [urls, tmp_path / "missing"])
    assert [c.name for c in channels] == ["notification URL #2 (json)"]
    assert problems[0].startswith("notification command no-such-notify-command: not found")
    assert "missing" in problems[1] and "notification URL file" in problems[1]
    assert problems[2] == "notification URL #1 (bogus) is not a URL apprise knows"


def test_without_apprise_urls_are_one_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = tmp_path / "urls"
    urls.write_text("json://127.0.0.1:9/a\njson://127.0.0.1:9/b\n")
    # As if the optional extra were not installed: the import fails.
    monkeypatch.setitem(sys.modules, "apprise", None)
    channels, problems = open_channels([], [urls])
    assert channels == [] and problems == [APPRISE_MISSING]
