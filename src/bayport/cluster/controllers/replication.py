"""The replication controller: keeps spec.replicas pods matching spec.selector, from spec.template.

Pods it creates carry a controller ownerReference (so the store's cascading delete removes them
with the RC) and generateName ``<rc>-``. Owned pods are found through the pods informer's owner
index; orphans whose labels match are adopted, owned pods whose labels stop matching are released,
as Kubernetes does. Scale-down deletes the least valuable pods first (unscheduled, pending,
not-ready, newest). ``Expectations`` bridge the gap between a store write and its watch event so
a second pass never double-creates. Status mirrors the real controller's fields.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from bayport.cluster.controllers.clock import parse_rfc3339
from bayport.cluster.controllers.events import NORMAL, WARNING, EventRecorder
from bayport.cluster.controllers.expectations import Expectations
from bayport.cluster.controllers.informer import Informer, object_key, split_key
from bayport.cluster.controllers.ownership import (
    controller_of,
    is_ready,
    is_terminal,
    labels_of,
    owner_reference,
    selector_matches,
)
from bayport.cluster.controllers.workqueue import WorkQueue
from bayport.cluster.errors import ApiError
from bayport.cluster.store import Store
from bayport.cluster.watch import ADDED, DELETED, clone

log = logging.getLogger(__name__)

Obj = dict[str, Any]
KIND = "ReplicationController"
COMPONENT = "replication-controller"
OWNER_INDEX = "owner"
NAMESPACE_INDEX = "namespace"
BURST = 500                  # pods created or deleted per pass, as the Kubernetes controller's burst


def pod_summary(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    """The parts of a pod a workload controller's decisions depend on."""
    status = pod.get("status") or {}
    return (status.get("phase"), is_ready(pod), (pod.get("spec") or {}).get("nodeName"),
            labels_of(pod), sum(int(c.get("restartCount") or 0)
                                for c in status.get("containerStatuses") or ()))


def deletion_rank(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    """Sort key: pods to delete first come first (k8s ActivePods ordering, simplified)."""
    status = pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase") or "Pending", 0)
    restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or ())
    meta = pod["metadata"]
    created = parse_rfc3339(meta.get("creationTimestamp")) or 0.0
    return (bool((pod.get("spec") or {}).get("nodeName")), phase_rank, is_ready(pod), -restarts,
            -created, meta["name"])


def template_pod(owner: Obj, template: Mapping[str, Any], extra_labels: Mapping[str, str] | None = None
                 ) -> Obj:
    """A new pod body from ``template`` owned by ``owner`` (a private copy, ready for the store)."""
    meta = owner["metadata"]
    tmeta = template.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    labels.update(extra_labels or {})
    pod_meta: Obj = {"generateName": f"{meta['name']}-", "namespace": meta.get("namespace"),
                     "labels": labels, "ownerReferences": [owner_reference(owner)]}
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        pod_meta["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
            "spec": clone({"s": template.get("spec") or {}})["s"]}


class ReplicationManager:
    def __init__(self, store: Store, rcs: Informer, pods: Informer, recorder: EventRecorder) -> None:
        self.store = store
        self.rcs = rcs
        self.pods = pods
        self.recorder = recorder
        self.queue = WorkQueue("replication", self.reconcile)
        self.expectations = Expectations()
        self._keys: dict[str, str] = {}                 # rc uid → key
        self._orphans: dict[str, dict[str, None]] = {}  # rc uid → orphan pod keys to adopt
        rcs.add_handler(self._on_rc)
        pods.add_handler(self._on_pod)

    # --- informer handlers ----------------------------------------------------------------------

    def _on_rc(self, kind: str, rc: Obj, old: Obj | None) -> None:
        key = object_key(rc)
        uid = rc["metadata"]["uid"]
        if kind == DELETED:
            self._keys.pop(uid, None)
            self._orphans.pop(uid, None)
            self.expectations.forget(uid)
            self.queue.forget(key)
            return
        self._keys[uid] = key
        if old is None or (old.get("spec") or {}).get("selector") != (rc.get("spec") or {}).get("selector"):
            self._find_orphans(rc)
        self.queue.add(key)

    def _find_orphans(self, rc: Obj) -> None:
        selector = (rc.get("spec") or {}).get("selector")
        namespace = rc["metadata"].get("namespace") or "default"
        uid = rc["metadata"]["uid"]
        for pod in self.pods.by_index(NAMESPACE_INDEX, namespace):
            if controller_of(pod) is None and not is_terminal(pod) and \
                    selector_matches(selector, labels_of(pod)):
                self._orphans.setdefault(uid, {})[object_key(pod)] = None

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        ref = controller_of(pod)
        if ref is None:
            if kind != DELETED and not is_terminal(pod):
                self._offer_orphan(pod)
            return
        if ref.get("kind") != KIND:
            return
        owner = str(ref.get("uid"))
        if kind == ADDED:
            self.expectations.observed_create(owner, pod["metadata"]["name"])
        elif kind == DELETED:
            self.expectations.observed_delete(owner, pod["metadata"]["uid"])
        elif old is not None and pod_summary(old) == pod_summary(pod):
            return
        key = self._keys.get(owner)
        if key is not None:
            self.queue.add(key)

    def _offer_orphan(self, pod: Obj) -> None:
        namespace = pod["metadata"].get("namespace") or "default"
        labels = labels_of(pod)
        for rc in self.rcs.by_index(NAMESPACE_INDEX, namespace):
            if selector_matches((rc.get("spec") or {}).get("selector"), labels):
                uid = rc["metadata"]["uid"]
                self._orphans.setdefault(uid, {})[object_key(pod)] = None
                self.queue.add(object_key(rc))
                return

    # --- reconcile --------------------------------------------------------------------------------

    def reconcile(self, key: str) -> None:
        namespace, name = split_key(key)
        try:
            rc = self.store.get_snapshot("replicationcontrollers", namespace, name)
        except ApiError:
            return
        uid = rc["metadata"]["uid"]
        spec = rc.get("spec") or {}
        selector: Mapping[str, str] = spec.get("selector") or {}
        self._adopt(rc, selector)
        pending_deletes = self.expectations.pending_deletes(uid)
        active: list[Obj] = []
        for pod in self.pods.by_index(OWNER_INDEX, uid):
            if is_terminal(pod) or pod["metadata"]["uid"] in pending_deletes:
                continue
            if not selector_matches(selector, labels_of(pod)):
                self._release(pod, uid)
                continue
            active.append(pod)
        names = {p["metadata"]["name"] for p in active}
        in_flight = [n for n in self.expectations.pending_creates(uid) if n not in names]
        wanted = int(spec.get("replicas", 1) or 0)
        diff = wanted - len(active) - len(in_flight)
        if diff > 0:
            self._create(rc, min(diff, BURST))
        elif diff < 0:
            victims = sorted(active, key=deletion_rank)[:min(-diff, BURST)]
            self._delete(rc, victims)
            gone = {p["metadata"]["uid"] for p in victims}
            active = [p for p in active if p["metadata"]["uid"] not in gone]
        self._write_status(namespace, name, rc, active)

    def _adopt(self, rc: Obj, selector: Mapping[str, str]) -> None:
        orphans = self._orphans.pop(rc["metadata"]["uid"], None)
        if not orphans:
            return
        ref = owner_reference(rc)
        for pod_key in orphans:
            pod = self.pods.get(pod_key)
            if pod is None or controller_of(pod) is not None or \
                    not selector_matches(selector, labels_of(pod)):
                continue

            def adopt(obj: Obj) -> None:
                if controller_of(obj) is None and selector_matches(selector, labels_of(obj)):
                    obj["metadata"].setdefault("ownerReferences", []).append(dict(ref))

            namespace, name = split_key(pod_key)
            try:
                self.store.mutate("pods", namespace, name, adopt)
            except ApiError:
                continue

    def _release(self, pod: Obj, uid: str) -> None:
        def release(obj: Obj) -> None:
            refs = [r for r in obj["metadata"].get("ownerReferences") or () if r.get("uid") != uid]
            if refs:
                obj["metadata"]["ownerReferences"] = refs
            else:
                obj["metadata"].pop("ownerReferences", None)

        meta = pod["metadata"]
        try:
            self.store.mutate("pods", meta.get("namespace"), meta["name"], release)
        except ApiError:
            return

    def _create(self, rc: Obj, count: int) -> None:
        template = (rc.get("spec") or {}).get("template") or {}
        uid = rc["metadata"]["uid"]
        for _ in range(count):
            try:
                pod = self.store.create_owned("pods", template_pod(rc, template))
            except ApiError as exc:
                self.recorder.record(rc, WARNING, "FailedCreate", f"Error creating: {exc.message}",
                                     component=COMPONENT)
                raise
            self.expectations.expect_create(uid, pod["metadata"]["name"])
            self.recorder.record(rc, NORMAL, "SuccessfulCreate",
                                 f"Created pod: {pod['metadata']['name']}", component=COMPONENT)

    def _delete(self, rc: Obj, victims: list[Obj]) -> None:
        uid = rc["metadata"]["uid"]
        for pod in victims:
            meta = pod["metadata"]
            self.expectations.expect_delete(uid, meta["uid"])
            try:
                self.store.delete_snapshot("pods", meta.get("namespace"), meta["name"])
            except ApiError:
                self.expectations.observed_delete(uid, meta["uid"])
                continue
            self.recorder.record(rc, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta['name']}",
                                 component=COMPONENT)

    def _write_status(self, namespace: str | None, name: str, rc: Obj, active: list[Obj]) -> None:
        spec = rc.get("spec") or {}
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        min_ready = float(spec.get("minReadySeconds") or 0)
        now = time.time()
        ready = available = fully_labeled = 0
        next_check: float | None = None
        for pod in active:
            labels = labels_of(pod)
            if all(labels.get(k) == v for k, v in template_labels.items()):
                fully_labeled += 1
            if not is_ready(pod):
                continue
            ready += 1
            since = _ready_since(pod)
            if min_ready <= 0 or (since is not None and since + min_ready <= now):
                available += 1
            elif since is not None:
                wait = since + min_ready - now
                next_check = wait if next_check is None else min(next_check, wait)
        status: Obj = {"replicas": len(active), "fullyLabeledReplicas": fully_labeled,
                       "readyReplicas": ready, "availableReplicas": available,
                       "observedGeneration": rc["metadata"].get("generation", 1)}
        old = rc.get("status") or {}
        if any(old.get(k) != v for k, v in status.items()):
            def write(obj: Obj) -> None:
                current = obj.get("status") or {}
                obj["status"] = {**current, **status}

            self.store.mutate("replicationcontrollers", namespace, name, write)
        if next_check is not None:
            self.queue.add_after(object_key(rc), next_check + 0.01)


def _ready_since(pod: Mapping[str, Any]) -> float | None:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return parse_rfc3339(cond.get("lastTransitionTime"))
    return None

