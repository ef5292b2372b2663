"""The scheduler: binds each unbound pod to the least-loaded node that may run it.

Feasible nodes are Ready, not cordoned, below their ``pods`` allocatable, carry no NoSchedule /
NoExecute taint the pod does not tolerate and match its ``nodeSelector``. Load is the number of
non-terminal pods bound to a node, kept incrementally from the pods informer (and "assumed" at
bind time, before the watch confirms it). Untainted feasible nodes sit in buckets by load, so the
common pod (no selector) is placed in O(distinct loads) rather than O(nodes); tainted nodes
(masters) are few and checked one by one. Binding writes spec.nodeName and the PodScheduled
condition in one store.mutate and records a Scheduled event; the node agent takes over from
there. A pod nothing fits gets PodScheduled=False/Unschedulable, a FailedScheduling warning, and
is retried when nodes change or pods free capacity.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

from bayport.cluster.controllers.clock import now_rfc3339
from bayport.cluster.controllers.events import NORMAL, WARNING, EventRecorder
from bayport.cluster.controllers.informer import Informer, object_key, split_key
from bayport.cluster.controllers.ownership import is_terminal
from bayport.cluster.controllers.workqueue import WorkQueue
from bayport.cluster.errors import ApiError
from bayport.cluster.store import Store
from bayport.cluster.watch import DELETED

log = logging.getLogger(__name__)

Obj = dict[str, Any]
COMPONENT = "default-scheduler"
_BLOCKING = ("NoSchedule", "NoExecute")
_DEFAULT_POD_CAPACITY = 110


def tolerates(tolerations: list[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    for tol in tolerations:
        effect = tol.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        operator = tol.get("operator") or "Equal"
        key = tol.get("key")
        if not key:
            if operator == "Exists":
                return True
            continue
        if key != taint.get("key"):
            continue
        if operator == "Exists" or (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


class _Node:
    __slots__ = ("capacity", "labels", "name", "ready", "schedulable", "taints")

    def __init__(self, node: Obj) -> None:
        self.name: str = node["metadata"]["name"]
        self.labels: Mapping[str, str] = node["metadata"].get("labels") or {}
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        self.schedulable = not spec.get("unschedulable")
        self.taints: list[Mapping[str, Any]] = [t for t in spec.get("taints") or ()
                                                if t.get("effect") in _BLOCKING]
        self.ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                         for c in status.get("conditions") or ())
        raw = (status.get("allocatable") or status.get("capacity") or {}).get("pods")
        try:
            self.capacity = int(raw) if raw is not None else _DEFAULT_POD_CAPACITY
        except (TypeError, ValueError):
            self.capacity = _DEFAULT_POD_CAPACITY

    @property
    def usable(self) -> bool:
        return self.ready and self.schedulable


class _LoadBuckets:
    """Nodes grouped by load; ``least`` is O(number of distinct loads)."""

    def __init__(self) -> None:
        self._buckets: dict[int, dict[str, None]] = {}
        self._load: dict[str, int] = {}

    def put(self, name: str, load: int) -> None:
        current = self._load.get(name)
        if current == load:
            return
        if current is not None:
            self._take(name, current)
        self._buckets.setdefault(load, {})[name] = None
        self._load[name] = load

    def discard(self, name: str) -> None:
        current = self._load.pop(name, None)
        if current is not None:
            self._take(name, current)

    def least(self) -> tuple[str, int] | None:
        if not self._buckets:
            return None
        load = min(self._buckets)
        return next(iter(self._buckets[load])), load

    def _take(self, name: str, load: int) -> None:
        bucket = self._buckets[load]
        del bucket[name]
        if not bucket:
            del self._buckets[load]


class Scheduler:
    def __init__(self, store: Store, pods: Informer, nodes: Informer, recorder: EventRecorder) -> None:
        self.store = store
        self.pods = pods
        self.recorder = recorder
        self.queue = WorkQueue("scheduler", self.reconcile)
        self._nodes: dict[str, _Node] = {}
        self._load: Counter[str] = Counter()
        self._placed: dict[str, str] = {}        # pod key → node it occupies (observed or assumed)
        self._clean = _LoadBuckets()              # usable, untainted, not full
        self._tainted: dict[str, None] = {}       # usable, tainted
        self._unschedulable: dict[str, None] = {}
        pods.add_handler(self._on_pod)
        nodes.add_handler(self._on_node)

    def load(self, node: str) -> int:
        return self._load.get(node, 0)

    # --- informer handlers ----------------------------------------------------------------------

    def _on_node(self, kind: str, node: Obj, old: Obj | None) -> None:
        name = node["metadata"]["name"]
        if kind == DELETED:
            self._nodes.pop(name, None)
        else:
            self._nodes[name] = _Node(node)
        self._refresh(name)
        if kind != DELETED and self._unschedulable:
            self._retry_unschedulable()

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        key = object_key(pod)
        node = None if kind == DELETED or is_terminal(pod) else (pod["spec"].get("nodeName") or None)
        before = self._placed.get(key)
        if node is not None and before != node:
            self._place(key, node)
        elif node is None and before is not None and (kind == DELETED or pod["spec"].get("nodeName")):
            self._unplace(key)
            if self._unschedulable:
                self._retry_unschedulable()
        if kind == DELETED:
            self._unschedulable.pop(key, None)
            self.queue.forget(key)
        elif not pod["spec"].get("nodeName") and not is_terminal(pod) and self._ours(pod):
            self.queue.add(key)

    @staticmethod
    def _ours(pod: Obj) -> bool:
        return (pod["spec"].get("schedulerName") or COMPONENT) == COMPONENT

    def _place(self, key: str, node: str) -> None:
        previous = self._placed.get(key)
        if previous is not None:
            self._unplace(key)
        self._placed[key] = node
        self._load[node] += 1
        self._refresh(node)

    def _unplace(self, key: str) -> None:
        node = self._placed.pop(key)
        self._load[node] -= 1
        if self._load[node] <= 0:
            del self._load[node]
        self._refresh(node)

    def _refresh(self, name: str) -> None:
        info = self._nodes.get(name)
        load = self._load.get(name, 0)
        if info is None or not info.usable:
            self._clean.discard(name)
            self._tainted.pop(name, None)
        elif info.taints:
            self._clean.discard(name)
            self._tainted[name] = None
        else:
            self._tainted.pop(name, None)
            if load < info.capacity:
                self._clean.put(name, load)
            else:
                self._clean.discard(name)

    def _retry_unschedulable(self) -> None:
        for key in self._unschedulable:
            self.queue.add(key)

    # --- reconcile --------------------------------------------------------------------------------

    def reconcile(self, key: str) -> None:
        namespace, name = split_key(key)
        try:
            pod = self.store.get_snapshot("pods", namespace, name)
        except ApiError:
            self._unschedulable.pop(key, None)
            return
        spec = pod["spec"]
        if spec.get("nodeName") or is_terminal(pod) or not self._ours(pod):
            self._unschedulable.pop(key, None)
            return
        choice = self._choose(spec)
        if isinstance(choice, str):
            self._bind(key, pod, choice)
        else:
            self._unschedulable[key] = None
            self._report_unschedulable(pod, choice)

    def _choose(self, spec: Mapping[str, Any]) -> str | Counter[str]:
        """The node to bind to, or the reasons (per count of nodes) why none fits."""
        tolerations: list[Mapping[str, Any]] = spec.get("tolerations") or []
        selector: Mapping[str, str] = spec.get("nodeSelector") or {}
        if not selector:
            best = self._clean.least()
            for name in self._tainted:
                info = self._nodes[name]
                load = self._load.get(name, 0)
                if (best is None or load < best[1]) and load < info.capacity and \
                        all(tolerates(tolerations, t) for t in info.taints):
                    best = (name, load)
            if best is not None:
                return best[0]
        reasons: Counter[str] = Counter()
        chosen: tuple[str, int] | None = None
        for info in self._nodes.values():
            reason = self._misfit(info, selector, tolerations)
            if reason:
                reasons[reason] += 1
                continue
            load = self._load.get(info.name, 0)
            if chosen is None or load < chosen[1]:
                chosen = (info.name, load)
        return chosen[0] if chosen is not None else reasons

    def _misfit(self, info: _Node, selector: Mapping[str, str],
                tolerations: list[Mapping[str, Any]]) -> str | None:
        """Why ``info`` cannot take the pod, checked in the default scheduler's filter order."""
        if not info.ready:
            return "node(s) were not ready"
        if not info.schedulable:
            return "node(s) were unschedulable"
        for taint in info.taints:
            if not tolerates(tolerations, taint):
                return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"
        if any(info.labels.get(k) != v for k, v in selector.items()):
            return "node(s) didn't match Pod's node affinity/selector"
        if self._load.get(info.name, 0) >= info.capacity:
            return "Too many pods"
        return None

    def _bind(self, key: str, pod: Obj, node: str) -> None:
        now = now_rfc3339()

        def bind(obj: Obj) -> None:
            if obj["spec"].get("nodeName"):
                return
            obj["spec"]["nodeName"] = node
            status = obj.setdefault("status", {})
            conditions = [c for c in status.get("conditions") or () if c.get("type") != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                               "lastTransitionTime": now})
            status["conditions"] = conditions

        namespace, name = split_key(key)
        bound = self.store.mutate("pods", namespace, name, bind)
        if bound["spec"].get("nodeName") != node:
            return
        self._unschedulable.pop(key, None)
        self._place(key, node)
        self.recorder.record(bound, NORMAL, "Scheduled",
                             f"Successfully assigned {namespace}/{name} to {node}", component=COMPONENT)

    def _report_unschedulable(self, pod: Obj, reasons: Counter[str]) -> None:
        total = len(self._nodes)
        if reasons:
            detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
            message = f"0/{total} nodes are available: {detail}."
        else:
            message = f"0/{total} nodes are available."
        meta = pod["metadata"]
        current = next((c for c in (pod.get("status") or {}).get("conditions") or ()
                        if c.get("type") == "PodScheduled"), None)
        if current is None or current.get("status") != "False" or current.get("message") != message:
            now = now_rfc3339()

            def mark(obj: Obj) -> None:
                status = obj.setdefault("status", {})
                conditions = [c for c in status.get("conditions") or ()
                              if c.get("type") != "PodScheduled"]
                conditions.append({"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                                   "lastTransitionTime": now, "reason": "Unschedulable",
                                   "message": message})
                status["conditions"] = conditions

            self.store.mutate("pods", meta.get("namespace"), meta["name"], mark)
        self.recorder.record(pod, WARNING, "FailedScheduling", message, component=COMPONENT)
