"""The naive baseline of bench_fire.py: sleep on the local clock, then POST with a fresh client.

This is what most registration scripts do: no NTP, `time.sleep` until the local clock reads
the instant, then `httpx.post` (a new connection, as `requests.post` would open). Usage:
`naive_client.py BASE_URL TOKEN DEADLINE_NS CRN`, DEADLINE_NS in epoch nanoseconds of the
LOCAL clock; prints the HTTP status of the answer.
"""

from __future__ import annotations

import sys
import time
from typing import Final

import httpx

from obsd.core.obs_answer import REGISTRATION_PATH

# OBS may take seconds to answer on opening day; a script would not give up sooner.
TIMEOUT_S: Final = 30.0


def main(argv: list[str]) -> int:
    """Sleep until the deadline on the local clock, send one POST, print its status."""
    base_url, token, deadline_ns, crn = argv
    remaining_s = (int(deadline_ns) - time.time_ns()) / 1e9
    if remaining_s > 0:
        time.sleep(remaining_s)
    response = httpx.post(
        base_url + REGISTRATION_PATH,
        json={"ECRN": [crn], "SCRN": []},
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT_S,
    )
    print(response.status_code, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
