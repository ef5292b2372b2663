"""Shared informers: one list+watch per resource kind feeding every controller that needs it.

An ``Informer`` lists the store synchronously, then follows a watch from that resourceVersion and
keeps a cache of the store's own read-only snapshots (no copies: 100,000 pods cost no extra
memory). Handlers registered by controllers get ``(event type, object, previous object or None)``
synchronously and must only update their bookkeeping and enqueue keys (``workqueue``). Indexes
(pods by node, by owner uid, by namespace) are maintained incrementally so no controller scans
every object on an event. A 410 Gone from the watch triggers a relist that replays the difference
as synthetic events.

Cached objects are shared with the store: never mutate them; copy before editing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from bayport.cluster.store import Store
from bayport.cluster.watch import ADDED, DELETED, ERROR, MODIFIED, Watch

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Handler = Callable[[str, Obj, Obj | None], None]
IndexFn = Callable[[Obj], Iterable[str]]

_YIELD_EVERY = 200           # events dispatched between explicit yields to the loop


def object_key(obj: Obj) -> str:
    """``namespace/name`` for namespaced objects, ``name`` for cluster-scoped ones."""
    meta = obj["metadata"]
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else str(meta["name"])


def split_key(key: str) -> tuple[str | None, str]:
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else (None, ns)


class Informer:
    """The cache and event fan-out for one resource kind (``plural``)."""

    def __init__(self, store: Store, plural: str) -> None:
        self.store = store
        self.plural = plural
        self._cache: dict[str, Obj] = {}
        self._handlers: list[Handler] = []
        self._indexers: dict[str, IndexFn] = {}
        self._indexes: dict[str, dict[str, dict[str, None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._watch: Watch | None = None
        self._rv = 0

    # --- setup --------------------------------------------------------------------------------

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def add_index(self, name: str, fn: IndexFn) -> None:
        if self._cache:
            raise RuntimeError("indexes must be added before the informer starts")
        self._indexers[name] = fn
        self._indexes[name] = {}

    def start(self) -> None:
        """List now (handlers see ADDED for every existing object), then watch in a task."""
        items, rv = self.store.list_snapshots(self.plural)
        self._rv = rv
        self._watch = self.store.watch(self.plural)   # opened before anything can be written: no gap
        for obj in items:
            self._apply(ADDED, obj)
        self._task = asyncio.create_task(self._follow(), name=f"informer-{self.plural}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- reads --------------------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        return self._cache.get(key)

    def __len__(self) -> int:
        return len(self._cache)

    def cached_keys(self) -> list[str]:
        return list(self._cache)

    def index_keys(self, index: str, value: str) -> list[str]:
        return list(self._indexes[index].get(value, ()))

    def by_index(self, index: str, value: str) -> list[Obj]:
        bucket = self._indexes[index].get(value)
        if not bucket:
            return []
        cache = self._cache
        return [cache[k] for k in bucket]

    def index_size(self, index: str, value: str) -> int:
        return len(self._indexes[index].get(value, ()))

    # --- the watch loop -------------------------------------------------------------------------

    async def _follow(self) -> None:
        while self._watch is not None:
            watch = self._watch
            try:
                dispatched = 0
                while True:
                    item = await watch.next_raw()
                    if item is None:
                        break
                    kind, obj = item
                    if kind == ERROR:
                        log.info("watch on %s expired (%s); relisting", self.plural, obj.get("message"))
                        self._relist()
                        break
                    self._rv = int(obj["metadata"]["resourceVersion"])
                    self._apply(kind, obj)
                    dispatched += 1
                    if dispatched % _YIELD_EVERY == 0:
                        await asyncio.sleep(0)
            finally:
                watch.close()
            self._watch = self.store.watch(self.plural, resource_version=self._rv or None)

    def _relist(self) -> None:
        items, rv = self.store.list_snapshots(self.plural)
        fresh = {object_key(o): o for o in items}
        for key, gone in list(self._cache.items()):
            if key not in fresh:
                self._apply(DELETED, gone)
        for key, obj in fresh.items():
            cached = self._cache.get(key)
            if cached is None:
                self._apply(ADDED, obj)
            elif cached["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                self._apply(MODIFIED, obj)
        self._rv = rv

    def _apply(self, kind: str, obj: Obj) -> None:
        key = object_key(obj)
        old = self._cache.get(key)
        if kind == DELETED:
            if old is None:
                return
            self._cache.pop(key, None)
            self._reindex(key, old, None)
        else:
            if kind == ADDED and old is not None and \
                    old["metadata"].get("uid") != obj["metadata"].get("uid"):
                # the name was reused while we were not looking: the old object is gone
                self._cache.pop(key, None)
                self._reindex(key, old, None)
                self._dispatch(DELETED, old, None)
                old = None
            self._cache[key] = obj
            self._reindex(key, old, obj)
            kind = MODIFIED if old is not None else ADDED
        self._dispatch(kind, obj, old)

    def _dispatch(self, kind: str, obj: Obj, old: Obj | None) -> None:
        for handler in self._handlers:
            try:
                handler(kind, obj, old)
            except Exception:
                log.exception("%s handler failed on %s %s", self.plural, kind, object_key(obj))

    def _reindex(self, key: str, old: Obj | None, new: Obj | None) -> None:
        for name, fn in self._indexers.items():
            values_before = list(fn(old)) if old is not None else []
            values_after = list(fn(new)) if new is not None else []
            if values_before == values_after:
                continue
            before, after = set(values_before), set(values_after)
            index = self._indexes[name]
            for value in before - after:
                bucket = index.get(value)
                if bucket is not None:
                    bucket.pop(key, None)
                    if not bucket:
                        del index[value]
            for value in after - before:
                index.setdefault(value, {})[key] = None
