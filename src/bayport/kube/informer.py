"""Shared informers: per bay and resource type one list+watch, whatever number of consumers.

Workload rows (``conductor.watch``), job records (``conductor.job_watch``) and the pod-network
controller (``network.controller.bay``) subscribe here; none opens a stream of its own. This is
the one list/watch loop of the control plane (client-go's shared informer is the model):

* An ``Informer`` lists (all objects of the kind, or those carrying given labels when that is
  all its consumers want), keeps the objects in a store (key: namespace/name), and watches
  from the list's resourceVersion with ``allowWatchBookmarks`` (a BOOKMARK only advances the
  version; servers that send none, like the embedded cluster, are fine) and ``timeoutSeconds``
  (jittered, so a conductor's watches do not all reconnect at once; lightkube reconnects from
  the last version when the server ends a watch).
* Nothing at all on a stream (no event, no bookmark) for ``inactivity`` seconds means the
  connection is half-open or the server behind the address changed: the stream is closed, the
  bay's credentials re-read and everything relisted. lightkube reads watches without a timeout,
  so without this a dead connection would stall the informer silently. 410 Gone relists at
  once, and with jittered back-off when it repeats (a 410 storm does not turn into a list loop).
  New credentials (a re-hosted bay: new URL and token) relist too, for every consumer.
  Other failures back off exponentially with jitter (``backoff``).
* Every consumer has a ``Subscription``: its own bounded queue drained by its own task, so a
  slow consumer delays nobody else. On overflow its queue is dropped and it is resynced: it
  gets a ``Snapshot`` of the store (the same call it gets after every relist) and then the
  events that follow, so it never misses a state, only intermediate ones. A consumer that
  raises is logged and retried for that object alone, with back-off, from the store's current
  state of the object (or as DELETED when it is gone), until it succeeds or a newer event of
  the object does; a raising snapshot is retried the same way. The informer and the other
  consumers carry on meanwhile.

``Informers`` is the set of one process: an informer starts with its first subscription and
stops with its last, so its store lives exactly as long as someone needs it. There is one
informer per bay and resource per process: ``bayport serve`` and every conductor share one
``Informers`` among the three consumers; a ``bayport netd`` process (conductors started with
``--external-netd``) has its own, for the pods and namespaces it watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx2
from lightkube import AsyncClient, operators
from lightkube.core.exceptions import ApiError
from lightkube.core.resource import NamespacedResource

from bayport import errors
from bayport.db.base import utcnow
from bayport.kube.client import ClusterClients, is_gone

log = logging.getLogger(__name__)

# Back-off between attempts after a failure: doubles from RETRY_FIRST up to RETRY_MAX, each
# delay drawn from [delay/2, delay] so that watches failing together do not retry together.
RETRY_FIRST, RETRY_MAX = 0.1, 5.0
# Sent as timeoutSeconds (each watch draws from [0.8, 1] of it, as client-go spreads its own).
WATCH_TIMEOUT = 300.0
# No byte on a stream this long: the connection is considered dead. A kube-apiserver sends a
# bookmark about every minute, so a healthy watch never gets here; on a server without
# bookmarks a quiet stream is relisted this often, which is cheap next to a silent stall.
INACTIVITY = 330.0
# Events waiting for one consumer before it is resynced from the store instead.
QUEUE_LIMIT = 10_000

Key = tuple[str, str]
SnapshotHandler = Callable[["Snapshot"], Awaitable[None]]
EventHandler = Callable[[str, Any], Awaitable[None]]


def backoff(attempt: int, first: float | None = None, cap: float | None = None) -> float:
    """Delay before retry ``attempt`` (1, 2, …): exponential, capped, with jitter."""
    base = min((first if first is not None else RETRY_FIRST) * 2 ** max(attempt - 1, 0),
               cap if cap is not None else RETRY_MAX)
    return random.uniform(base / 2, base)


def key_of(obj: Any) -> Key | None:
    meta = obj.metadata
    if meta is None or not meta.name:
        return None
    return (meta.namespace or "", meta.name)


@dataclass(frozen=True)
class Snapshot:
    """Every object the informer holds. ``listed_at`` is when its last list began: anything
    that existed in the cluster then is in ``objects`` unless it was deleted since, so a
    consumer may settle records older than that whose object is missing."""

    objects: list[Any]
    listed_at: datetime


class _Stalled(Exception):
    """Nothing arrived on a watch for the inactivity timeout."""


class _Rehosted(Exception):
    """The bay's client changed under a running watch (new credentials)."""


@dataclass(frozen=True, slots=True)
class _Retry:
    """Queued when a failed object's back-off is over."""

    key: Key


@dataclass(eq=False)
class _Failure:
    attempts: int
    last: Any
    timer: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class Subscription:
    """One consumer of one informer: a bounded queue and the task that drains it in order."""

    informer: Informer
    name: str
    on_snapshot: SnapshotHandler
    on_event: EventHandler
    limit: int = QUEUE_LIMIT
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    overflows: int = 0
    _queue: deque[tuple[str, Any] | _Retry] = field(default_factory=deque)
    _resync: bool = False
    _resync_attempts: int = 0
    _resync_timer: asyncio.TimerHandle | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _failed: dict[Key, _Failure] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def failing(self) -> int:
        """Objects whose handling failed and waits for a retry."""
        return len(self._failed)

    def start(self) -> None:
        self._task = asyncio.create_task(self._drain(), name=f"informer-{self.name}")

    async def stop(self) -> None:
        for failure in self._failed.values():
            if failure.timer is not None:
                failure.timer.cancel()
        self._failed.clear()
        self._queue.clear()
        if self._resync_timer is not None:
            self._resync_timer.cancel()
            self._resync_timer = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def resync(self) -> None:
        """Deliver a snapshot next; what is queued is already in it and is dropped."""
        if self._resync_timer is not None:
            self._resync_timer.cancel()   # a retry of a failed snapshot: this one replaces it
            self._resync_timer = None
        self._queue.clear()
        self._resync = True
        self._wake.set()

    def offer(self, item: tuple[str, Any] | _Retry) -> None:
        if len(self._queue) >= self.limit:
            self.overflows += 1
            log.warning("informer %s: consumer fell %d events behind; resyncing it from the store",
                        self.name, self.limit)
            self.resync()
            return
        self._queue.append(item)
        self._wake.set()

    async def _drain(self) -> None:
        while True:
            if not self._queue and not self._resync:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._resync:
                self._resync = False
                self._queue.clear()
                await self._deliver_snapshot()
                continue
            item = self._queue.popleft()
            if isinstance(item, _Retry):
                await self._retry(item.key)
            else:
                event, obj = item
                await self._deliver(key_of(obj), event, obj)

    async def _deliver_snapshot(self) -> None:
        for failure in self._failed.values():
            if failure.timer is not None:
                failure.timer.cancel()
        self._failed.clear()  # the snapshot carries every object's current state
        try:
            await self.on_snapshot(self.informer.snapshot())
        except Exception:
            self._resync_attempts += 1
            delay = backoff(self._resync_attempts)
            log.exception("informer %s: consumer failed on the snapshot; again in %.1fs",
                          self.name, delay)
            self._resync_timer = asyncio.get_running_loop().call_later(delay, self.resync)
            return
        self._resync_attempts = 0
        self.synced.set()

    async def _deliver(self, key: Key | None, event: str, obj: Any) -> None:
        try:
            await self.on_event(event, obj)
        except Exception:
            if key is None:
                log.exception("informer %s: consumer failed on a %s event", self.name, event)
                return
            failure = self._failed.get(key)
            if failure is None:
                failure = self._failed[key] = _Failure(0, obj)
            failure.attempts += 1
            failure.last = obj
            delay = backoff(failure.attempts)
            log.exception("informer %s: consumer failed on %s %s/%s (attempt %d); again in %.1fs",
                          self.name, event, key[0], key[1], failure.attempts, delay)
            if failure.timer is None:
                failure.timer = asyncio.get_running_loop().call_later(delay, self._due, key)
            return
        failure = self._failed.pop(key, None) if key is not None else None
        if failure is not None and failure.timer is not None:
            failure.timer.cancel()

    def _due(self, key: Key) -> None:
        failure = self._failed.get(key)
        if failure is not None:
            failure.timer = None
            self.offer(_Retry(key))

    async def _retry(self, key: Key) -> None:
        failure = self._failed.get(key)
        if failure is None:
            return  # a newer event of the object went through meanwhile
        current = self.informer.get(key)
        if current is None:
            await self._deliver(key, "DELETED", failure.last)
        else:
            await self._deliver(key, "MODIFIED", current)


@dataclass
class InformerStats:
    lists: int = 0
    watches: int = 0
    events: int = 0
    bookmarks: int = 0
    gone: int = 0
    stalls: int = 0
    rehosts: int = 0


class Informer:
    """One list+watch of one resource type in one bay, fanned out to its subscriptions."""

    def __init__(self, bay_uuid: str, resource: Any, clients: ClusterClients, *,
                 labels: tuple[str, ...] = (), watch_timeout: float = WATCH_TIMEOUT,
                 inactivity: float = INACTIVITY) -> None:
        self.bay_uuid = bay_uuid
        self.resource = resource
        self.labels = labels
        self.clients = clients
        self.watch_timeout = watch_timeout
        self.inactivity = inactivity
        self.name = f"{bay_uuid[:8]}/{resource.__name__.lower()}s" + (
            f"[{','.join(labels)}]" if labels else "")
        self.namespaced = issubclass(resource, NamespacedResource)
        self.subscriptions: list[Subscription] = []
        self.stats = InformerStats()
        self.synced = asyncio.Event()
        self.version: str | None = None
        self._store: dict[Key, Any] = {}
        self._listed_at = utcnow()
        self._seen = False
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._store)

    def get(self, key: Key) -> Any | None:
        return self._store.get(key)

    def snapshot(self) -> Snapshot:
        return Snapshot(list(self._store.values()), self._listed_at)

    def subscribe(self, name: str, on_snapshot: SnapshotHandler, on_event: EventHandler, *,
                  limit: int = QUEUE_LIMIT) -> Subscription:
        sub = Subscription(self, f"{self.name}:{name}", on_snapshot, on_event, limit)
        self.subscriptions.append(sub)
        sub.start()
        if self.synced.is_set():
            sub.resync()   # a late subscriber starts from the store, not from a relist
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer-{self.name}")
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        if sub in self.subscriptions:
            self.subscriptions.remove(sub)
        await sub.stop()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for sub in list(self.subscriptions):
            await self.unsubscribe(sub)
        self._store.clear()

    async def _run(self) -> None:
        client: AsyncClient | None = None
        refresh = False
        failures = gone = 0
        while True:
            self._seen = False
            try:
                fresh = await self.clients.get(self.bay_uuid, refresh=refresh)
                refresh = False
                if fresh is not client:
                    if client is not None:
                        self.stats.rehosts += 1
                        log.info("bay %s: %s: new credentials; relisting", self.bay_uuid, self.name)
                    # A re-hosted cluster's resourceVersions mean nothing next to the old one's.
                    client, self.version = fresh, None
                if self.version is None:
                    await self._relist(client)
                await self._watch(client)
            except ApiError as exc:
                if self._seen:
                    failures = gone = 0
                if is_gone(exc):
                    gone += 1
                    self.stats.gone += 1
                    self.version = None
                    if gone == 1:
                        log.info("bay %s: %s watch expired (410); relisting", self.bay_uuid,
                                 self.name)
                        continue
                    delay = backoff(gone - 1)
                    log.info("bay %s: %s: %d expiries (410) in a row; relisting in %.1fs",
                             self.bay_uuid, self.name, gone, delay)
                    await asyncio.sleep(delay)
                    continue
                # 401/403 after a re-host behind the same address: re-read the credentials.
                refresh = True
                log.warning("bay %s: %s watch refused: %s", self.bay_uuid, self.name, exc)
            except _Stalled:
                self.stats.stalls += 1
                log.warning("bay %s: %s: nothing on the watch for %.0fs; reconnecting and "
                            "relisting", self.bay_uuid, self.name, self.inactivity)
                self.version, refresh = None, True
                continue
            except _Rehosted:
                continue
            except (httpx2.HTTPError, errors.BayportError, OSError) as exc:
                refresh = True
                log.info("bay %s: %s watch interrupted (%s)", self.bay_uuid, self.name,
                         exc or type(exc).__name__)
            except Exception:
                refresh = True
                log.exception("bay %s: %s watch failed", self.bay_uuid, self.name)
            if self._seen:
                failures = gone = 0
            failures += 1
            await asyncio.sleep(backoff(failures))

    async def _relist(self, client: AsyncClient) -> None:
        started = utcnow()
        listing = client.list(self.resource, namespace="*" if self.namespaced else None,
                              labels={label: operators.exists() for label in self.labels} or None)
        store: dict[Key, Any] = {}
        async for obj in listing:
            key = key_of(obj)
            if key is not None:
                store[key] = obj
        self.stats.lists += 1
        self._store, self._listed_at = store, started
        self.version = listing.resourceVersion
        self.synced.set()
        for sub in self.subscriptions:
            sub.resync()

    async def _watch(self, client: AsyncClient) -> None:
        """Stream events until the stream fails (lightkube resumes a watch the server ended)."""
        # lightkube's watch() has no allowWatchBookmarks; the request is built the same way.
        timeout = int(self.watch_timeout * random.uniform(0.8, 1.0)) or 1
        request = client._client.prepare_request(
            "list", res=self.resource, namespace="*" if self.namespaced else None, watch=True,
            params={"timeoutSeconds": timeout, "resourceVersion": self.version,
                    "allowWatchBookmarks": "true",
                    "labelSelector": ",".join(self.labels) or None})
        stream = client._client.watch(request).__aiter__()
        self.stats.watches += 1
        try:
            while True:
                try:
                    async with asyncio.timeout(self.inactivity):
                        event, obj = await anext(stream)
                except TimeoutError:
                    raise _Stalled() from None
                self._seen = True
                if self.clients.cached(self.bay_uuid) is not client:
                    raise _Rehosted()
                self._apply(event, obj)
        finally:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(1.0):
                    await stream.aclose()

    def _apply(self, event: str, obj: Any) -> None:
        meta = obj.metadata
        version = meta.resourceVersion if meta is not None else None
        if version:
            self.version = version
        if event == "BOOKMARK":
            self.stats.bookmarks += 1
            return
        if event not in ("ADDED", "MODIFIED", "DELETED"):
            return
        key = key_of(obj)
        if key is None:
            return
        self.stats.events += 1
        if event == "DELETED":
            self._store.pop(key, None)
        else:
            self._store[key] = obj
        for sub in self.subscriptions:
            sub.offer((event, obj))


class Informers:
    """Every informer of this process, by bay and resource type (see the module docstring)."""

    def __init__(self, clients: ClusterClients, *, watch_timeout: float = WATCH_TIMEOUT,
                 inactivity: float = INACTIVITY, queue_limit: int = QUEUE_LIMIT) -> None:
        self.clients = clients
        self.watch_timeout = watch_timeout
        self.inactivity = inactivity
        self.queue_limit = queue_limit
        self._informers: dict[tuple[str, Any, tuple[str, ...]], Informer] = {}

    def __iter__(self) -> Iterator[Informer]:
        return iter(list(self._informers.values()))

    def of_bay(self, bay_uuid: str) -> list[Informer]:
        return [i for (bay, _, _), i in self._informers.items() if bay == bay_uuid]

    def subscribe(self, bay_uuid: str, resource: Any, name: str, on_snapshot: SnapshotHandler,
                  on_event: EventHandler, *, labels: tuple[str, ...] = ()) -> Subscription:
        """Follow ``resource`` in ``bay_uuid``: a snapshot once listed (and after every relist or
        overflow), then every event, in order, from this consumer's own queue.

        ``labels``: only objects carrying these labels, filtered by the server. Consumers share
        an informer only when they ask for the same labels, so a kind that several consume
        (pods) is asked for unfiltered by all of them and each filters what it gets.
        """
        key = (bay_uuid, resource, tuple(sorted(labels)))
        informer = self._informers.get(key)
        if informer is None:
            informer = self._informers[key] = Informer(
                bay_uuid, resource, self.clients, labels=key[2], watch_timeout=self.watch_timeout,
                inactivity=self.inactivity)
        return informer.subscribe(name, on_snapshot, on_event, limit=self.queue_limit)

    async def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to ``sub``; the informer stops (and forgets its store) with its last."""
        informer = sub.informer
        await informer.unsubscribe(sub)
        if not informer.subscriptions:
            key = (informer.bay_uuid, informer.resource, informer.labels)
            if self._informers.get(key) is informer:
                del self._informers[key]
            await informer.stop()

    async def close(self) -> None:
        informers = list(self._informers.values())
        self._informers.clear()
        for informer in informers:
            await informer.stop()
