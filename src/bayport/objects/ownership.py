"""Which process owns a bay's watches when no conductor hosts its cluster.

Rendezvous hashing: every member computes the same owner from the same membership,
with no coordination, and a change of membership moves only the bays of the member
that came or went. Used by the conductor's watch sets and the pod-network controller.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def rendezvous_owner(bay_uuid: str, members: Iterable[str]) -> str | None:
    """The member with the highest hash of (member, bay): stable while membership is."""
    best: tuple[bytes, str] | None = None
    for member in members:
        score = hashlib.sha256(f"{member}/{bay_uuid}".encode()).digest()
        if best is None or score > best[0]:
            best = (score, member)
    return best[1] if best else None
