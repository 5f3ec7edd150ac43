"""How many control connections are held, per peer user and in all, and whether one more may be.

Every connection costs a descriptor and some memory, and any local user may connect: without a
cap, one user could hold every descriptor the daemon has. The caps leave room for the
operator: a crowd of read-only connections can never lock out a peer who may change things.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

from obsd.core.protocol import Access

# One user may hold this many at once: room for hundreds of followers (a tail each), and
# still far from the 1024 descriptors a service gets by default.
MAX_CONNECTIONS_PER_UID: Final = 320
# All read-only peers together; peers with read-write access are held only to their own cap.
MAX_READ_ONLY_CONNECTIONS: Final = 640


class Admission:
    """Counts the connections held; says why one more is refused."""

    def __init__(
        self, per_uid: int = MAX_CONNECTIONS_PER_UID, read_only: int = MAX_READ_ONLY_CONNECTIONS
    ) -> None:
        self._per_uid = per_uid
        self._read_only_cap = read_only
        self._by_uid: Counter[int] = Counter()
        self._read_only = 0

    def refusal(self, uid: int, access: Access) -> str | None:
        """Why a new connection from `uid` is refused; None if it may be held."""
        if self._by_uid[uid] >= self._per_uid:
            return (
                f"uid {uid} already holds {self._by_uid[uid]} connections, the most one user "
                "may; close some and connect again"
            )
        if access == Access.RO and self._read_only >= self._read_only_cap:
            return (
                f"{self._read_only} read-only connections are open, the most obsd holds; "
                "connect again later"
            )
        return None

    def take(self, uid: int, access: Access) -> None:
        """Count a connection that was admitted."""
        self._by_uid[uid] += 1
        self._read_only += access == Access.RO

    def give_back(self, uid: int, access: Access) -> None:
        """A connection that was counted has closed."""
        self._by_uid[uid] -= 1
        if not self._by_uid[uid]:
            del self._by_uid[uid]
        self._read_only -= access == Access.RO
