"""Wall-clock time in the forms Kubernetes objects carry (RFC 3339, second precision, UTC)."""

from __future__ import annotations

import time
from datetime import datetime


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


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
