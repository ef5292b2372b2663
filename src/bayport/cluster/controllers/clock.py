"""Wall-clock time in the forms Kubernetes objects carry (RFC 3339, second precision, UTC).

Formatting is memoised per second: thousands of pods started in the same second share one string
object in their statuses and events instead of each carrying its own copy.
"""

from __future__ import annotations

import time
from datetime import datetime

_last: tuple[int, str] = (-1, "")


def rfc3339(ts: float) -> str:
    global _last
    second = int(ts)
    if _last[0] != second:
        _last = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _last[1]


def now_rfc3339() -> str:
    return rfc3339(time.time())


def parse_rfc3339(value: str | None) -> float | None:
    """Epoch seconds of ``2024-05-01T10:00:00Z`` (fractions and offsets tolerated); None if unset."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
