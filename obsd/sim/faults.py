"""Which registration POST gets which scripted fault (pure; the randomness is seeded).

What each fault does, and whether the POST still counts (toward the debounce and the volume
window) and still registers, as OBS's application would have seen it:

| kind           | the client sees                        | counts | registers |
|----------------|----------------------------------------|--------|-----------|
| reset          | connection reset, no response          | no     | no        |
| reset_after    | connection reset, no response          | yes    | yes       |
| http_500/503   | that status with a JSON error body     | yes    | no        |
| iis_503        | IIS's HTML page "HTTP Error 503. The   | no     | no        |
|                | service is unavailable", text/html     |        |           |
| expired        | 401 as if the token had expired        | yes    | no        |
| slow           | the normal answer, `slow_s` late       | yes    | yes       |
| malformed_json | 200 with the normal body cut in half   | yes    | yes       |

`iis_503` is what OBS's web server sends at a busy opening when its application queue is full:
the application never saw the POST. `reset` models a connection lost on the way in (the
application never saw the POST either);
`reset_after` one lost on the way back, the case where only a later VAL03 tells the client its
first POST worked. A POST counts only if its token is valid: OBS cannot attribute it otherwise.
"""

from __future__ import annotations

import random

from obsd.sim.config import FaultRule


class FaultPlan:
    """The configured rules, in order; the first that selects a POST applies."""

    def __init__(self, rules: list[FaultRule], seed: int) -> None:
        self._rules = rules
        # Its own stream, so that jitter draws never shift which POSTs are faulted.
        self._random = random.Random(f"faults:{seed}")

    def choose(self, post_number: int) -> FaultRule | None:
        """The fault for the `post_number`-th registration POST (1-based), if any."""
        chosen = None
        for rule in self._rules:
            if rule.on_posts is not None:
                selected = post_number in rule.on_posts
            else:
                # Drawn for every probabilistic rule and POST, so the sequence depends only
                # on the seed and the POST count.
                selected = self._random.random() < (rule.probability or 0.0)
            if selected and chosen is None:
                chosen = rule
        return chosen
