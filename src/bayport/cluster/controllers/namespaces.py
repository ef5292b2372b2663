"""The namespace controller: empties a Terminating namespace, then lets the store remove it.

``store.delete("namespaces", …)`` only marks the namespace Terminating (new content is refused
from then on). This controller deletes every namespaced object in it — workload controllers
first so they do not race to replace pods, then everything else; node agents tear the pods down
from their DELETED events — and finally calls ``store.finalize_namespace``.
"""

from __future__ import annotations

from bayport.cluster.controllers.informer import Informer, object_key
from bayport.cluster.controllers.workqueue import WorkQueue
from bayport.cluster.errors import ApiError
from bayport.cluster.resources import RESOURCES
from bayport.cluster.store import Store
from bayport.cluster.watch import DELETED

Obj = dict[str, object]
_FIRST = ("replicationcontrollers", "jobs", "services", "pods")


class NamespaceController:
    def __init__(self, store: Store, namespaces: Informer) -> None:
        self.store = store
        self.queue = WorkQueue("namespaces", self.reconcile)
        namespaces.add_handler(self._on_namespace)

    def _on_namespace(self, kind: str, namespace: dict[str, object], old: dict[str, object] | None) -> None:
        status = namespace.get("status")
        if kind != DELETED and isinstance(status, dict) and status.get("phase") == "Terminating":
            self.queue.add(object_key(namespace))

    def reconcile(self, name: str) -> None:
        try:
            namespace = self.store.get_snapshot("namespaces", None, name)
        except ApiError:
            return
        if (namespace.get("status") or {}).get("phase") != "Terminating":
            return
        plurals = [*_FIRST, *(p for p, r in RESOURCES.items() if r.namespaced and p not in _FIRST)]
        for plural in plurals:
            items, _ = self.store.list_snapshots(plural, name)
            for obj in items:
                meta = obj["metadata"]
                try:
                    self.store.delete_snapshot(plural, name, meta["name"], propagation="Background")
                except ApiError:
                    continue
        self.store.finalize_namespace(name)
