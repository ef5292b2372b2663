"""Recording core/v1 Events the way kubelet and the controllers do, with repeats folded.

Controllers call ``EventRecorder.record(obj, type, reason, message, component=…)``; the first
occurrence creates an Event named ``<object>.<hex nanoseconds>`` in the object's namespace
("default" for cluster-scoped objects such as Nodes), a repeat of the same
(object, type, reason, message, source) bumps ``count`` and ``lastTimestamp`` instead. Events
expire after ``ttl`` seconds like the apiserver's --event-ttl; the ControllerManager calls
``expire`` periodically. Recording never raises: a vanished or terminating namespace just means
the event is dropped.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from typing import Any

from bayport.cluster.controllers.clock import now_rfc3339, parse_rfc3339
from bayport.cluster.errors import ApiError
from bayport.cluster.store import Store

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"

_DedupKey = tuple[str, str, str, str, str, str, str, str]


class EventRecorder:
    def __init__(self, store: Store, *, ttl: float = 3600.0, cache_size: int = 8192) -> None:
        self.store = store
        self.ttl = ttl
        self._cache_size = cache_size
        self._recent: OrderedDict[_DedupKey, tuple[str, str]] = OrderedDict()
        self._created: deque[tuple[float, str, str]] = deque()
        self._last_ns = 0
        # Stored events are immutable snapshots, so identical sub-objects may be shared between
        # them: one source per component/host, one involvedObject per (object version, field).
        self._sources: dict[tuple[str, str], dict[str, str]] = {}
        self._involved_cache: dict[tuple[str, str, str], dict[str, Any]] = {}

    def record(self, obj: Mapping[str, Any], type_: str, reason: str, message: str, *,
               component: str, host: str | None = None, field_path: str = "") -> None:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name", ""))
        namespace = str(meta.get("namespace") or "default")
        uid = str(meta.get("uid", ""))
        kind = str(obj.get("kind", ""))
        key: _DedupKey = (uid, kind, field_path, type_, reason, message, component, host or "")
        now = now_rfc3339()
        known = self._recent.get(key)
        if known is not None:
            self._recent.move_to_end(key)
            if self._bump(known[0], known[1], now):
                return
        involved = self._involved(obj, kind, namespace, name, uid, field_path)
        source = self._sources.get((component, host or ""))
        if source is None:
            source = {"component": component, **({"host": host} if host else {})}
            self._sources[(component, host or "")] = source
        event_name = f"{name}.{self._unique_ns():x}"
        body: dict[str, Any] = {
            "metadata": {"name": event_name, "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "eventTime": None,
            "source": source,
            "reportingComponent": component,
            "reportingInstance": host or "",
        }
        try:
            self.store.create_owned("events", body)
        except ApiError as exc:
            log.debug("event %s/%s dropped: %s", namespace, reason, exc.message)
            return
        self._recent[key] = (namespace, event_name)
        if len(self._recent) > self._cache_size:
            self._recent.popitem(last=False)
        self._created.append((time.time(), namespace, event_name))

    def _involved(self, obj: Mapping[str, Any], kind: str, namespace: str, name: str, uid: str,
                  field_path: str) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        rv = str(meta.get("resourceVersion", ""))
        key = (uid, rv, field_path)
        involved = self._involved_cache.get(key)
        if involved is None:
            involved = {"kind": kind, "name": name, "uid": uid, "apiVersion": obj.get("apiVersion", "v1"),
                        "resourceVersion": rv}
            if meta.get("namespace"):
                involved["namespace"] = namespace
            if field_path:
                involved["fieldPath"] = field_path
            if len(self._involved_cache) >= 256:
                self._involved_cache.clear()
            self._involved_cache[key] = involved
        return involved

    def _bump(self, namespace: str, event_name: str, now: str) -> bool:
        def bump(event: dict[str, Any]) -> None:
            event["count"] = int(event.get("count") or 1) + 1
            event["lastTimestamp"] = now

        try:
            self.store.mutate("events", namespace, event_name, bump)
        except ApiError:
            return False
        return True

    def _unique_ns(self) -> int:
        stamp = max(time.time_ns(), self._last_ns + 1)
        self._last_ns = stamp
        return stamp

    def expire(self) -> int:
        """Delete events whose last occurrence is older than ``ttl``; returns how many went."""
        now = time.time()
        removed = 0
        while self._created and self._created[0][0] <= now - self.ttl:
            _, namespace, event_name = self._created.popleft()
            try:
                event = self.store.get_snapshot("events", namespace, event_name)
            except ApiError:
                continue
            last = parse_rfc3339(event.get("lastTimestamp")) or 0.0
            if last > now - self.ttl:
                self._created.append((last, namespace, event_name))
                continue
            try:
                self.store.delete_snapshot("events", namespace, event_name)
                removed += 1
            except ApiError:
                continue
        return removed
