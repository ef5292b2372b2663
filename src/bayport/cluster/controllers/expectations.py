"""What a controller has just asked the store for but has not yet seen come back on its watch.

The store is synchronous but informers learn about writes a loop iteration later; a controller
that reconciles again in between would count its own fresh pods as missing and create more.
``Expectations`` remembers, per owner, the names of pods created and the uids of pods deleted
until the informer reports them, and reconcilers add those to (or subtract them from) what they
observe — the k8s "controller expectations" idea, keyed by identity rather than by counter.
"""

from __future__ import annotations

import time

_STALE_AFTER = 30.0          # an expectation never observed (lost watch event) is dropped


class Expectations:
    def __init__(self) -> None:
        self._creates: dict[str, dict[str, float]] = {}
        self._deletes: dict[str, dict[str, float]] = {}

    def expect_create(self, owner: str, name: str) -> None:
        self._creates.setdefault(owner, {})[name] = time.monotonic()

    def expect_delete(self, owner: str, uid: str) -> None:
        self._deletes.setdefault(owner, {})[uid] = time.monotonic()

    def observed_create(self, owner: str, name: str) -> None:
        _discard(self._creates, owner, name)

    def observed_delete(self, owner: str, uid: str) -> None:
        _discard(self._deletes, owner, uid)

    def pending_creates(self, owner: str) -> list[str]:
        return _live(self._creates, owner)

    def pending_deletes(self, owner: str) -> set[str]:
        return set(_live(self._deletes, owner))

    def forget(self, owner: str) -> None:
        self._creates.pop(owner, None)
        self._deletes.pop(owner, None)


def _discard(table: dict[str, dict[str, float]], owner: str, item: str) -> None:
    bucket = table.get(owner)
    if bucket is not None:
        bucket.pop(item, None)
        if not bucket:
            del table[owner]


def _live(table: dict[str, dict[str, float]], owner: str) -> list[str]:
    bucket = table.get(owner)
    if not bucket:
        return []
    cutoff = time.monotonic() - _STALE_AFTER
    for item in [i for i, ts in bucket.items() if ts < cutoff]:
        del bucket[item]
    return list(bucket)
