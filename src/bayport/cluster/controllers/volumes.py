"""The PVC binder: every PersistentVolumeClaim is provisioned and bound at once.

A claim gets spec.volumeName ``pvc-<uid>``, status Bound with the requested capacity and its
accessModes, and — when ClusterSpec.data_dir is set — a directory data_dir/pv/<namespace>/<claim>
that the node agent hands the runtime for pod volumes using the claim. A matching
PersistentVolume (hostPath = that directory, claimRef, reclaim policy Delete) is created so
``kubectl get pv`` shows it. Deleting the claim deletes the volume and its directory, as dynamic
provisioning with reclaimPolicy Delete does. Directory work runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from pathlib import Path
from typing import Any

from bayport.cluster.controllers.informer import Informer, object_key, split_key
from bayport.cluster.controllers.workqueue import WorkQueue
from bayport.cluster.errors import ApiError
from bayport.cluster.paths import PathEscape, confined
from bayport.cluster.store import Store
from bayport.cluster.watch import DELETED

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DEFAULT_REQUEST = "1Gi"
PROVISIONER = "bayport.io/embedded"


def claim_dir(data_dir: Path, namespace: str, claim: str) -> Path:
    """data_dir/pv/<namespace>/<claim>, resolved; PathEscape for names that are paths (admission
    refuses them; this holds for objects that never went through it)."""
    return confined(data_dir / "pv", namespace, claim)


class VolumeBinder:
    def __init__(self, store: Store, claims: Informer, data_dir: Path | None) -> None:
        self.store = store
        self.claims = claims
        self.data_dir = data_dir
        self.queue = WorkQueue("volumes", self.reconcile)
        self._tasks: set[asyncio.Task[None]] = set()
        claims.add_handler(self._on_claim)

    async def stop(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_claim(self, kind: str, claim: Obj, old: Obj | None) -> None:
        key = object_key(claim)
        if kind == DELETED:
            self.queue.forget(key)
            self._reclaim(claim)
            return
        bound = (claim.get("status") or {}).get("phase") == "Bound"
        if not bound or not (claim.get("spec") or {}).get("volumeName"):
            self.queue.add(key)

    def reconcile(self, key: str) -> None:
        namespace, name = split_key(key)
        try:
            claim = self.store.get_snapshot("persistentvolumeclaims", namespace, name)
        except ApiError:
            return
        spec = claim.get("spec") or {}
        if (claim.get("status") or {}).get("phase") == "Bound" and spec.get("volumeName"):
            return
        ns = namespace or "default"
        volume = f"pvc-{claim['metadata']['uid']}"
        request = str(((spec.get("resources") or {}).get("requests") or {}).get("storage") or DEFAULT_REQUEST)
        modes = list(spec.get("accessModes") or ["ReadWriteOnce"])
        try:
            path = claim_dir(self.data_dir, ns, name) if self.data_dir is not None else None
        except PathEscape as exc:
            log.warning("claim %s/%s not provisioned: %s", ns, name, exc)
            return
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
        self._ensure_volume(volume, claim, request, modes, path)

        def bind(obj: Obj) -> None:
            obj["spec"]["volumeName"] = volume
            annotations = obj["metadata"].setdefault("annotations", {})
            annotations["pv.kubernetes.io/bind-completed"] = "yes"
            annotations["pv.kubernetes.io/bound-by-controller"] = "yes"
            annotations["volume.kubernetes.io/storage-provisioner"] = PROVISIONER
            obj["status"] = {"phase": "Bound", "accessModes": modes, "capacity": {"storage": request}}

        self.store.mutate("persistentvolumeclaims", namespace, name, bind)

    def _ensure_volume(self, volume: str, claim: Obj, request: str, modes: list[str],
                       path: Path | None) -> None:
        if self.store.exists("persistentvolumes", None, volume):
            return
        meta = claim["metadata"]
        spec: Obj = {
            "capacity": {"storage": request},
            "accessModes": modes,
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": (claim.get("spec") or {}).get("storageClassName") or "",
            "volumeMode": (claim.get("spec") or {}).get("volumeMode") or "Filesystem",
            "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                         "namespace": meta.get("namespace"), "name": meta["name"], "uid": meta["uid"]},
        }
        if path is not None:
            spec["hostPath"] = {"path": str(path), "type": "DirectoryOrCreate"}
        body: Obj = {"metadata": {"name": volume,
                                  "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
                     "spec": spec}
        try:
            self.store.create_owned("persistentvolumes", body)
            self.store.mutate("persistentvolumes", None, volume,
                              lambda pv: pv.__setitem__("status", {"phase": "Bound"}))
        except ApiError as exc:
            log.warning("persistent volume %s not created: %s", volume, exc.message)

    def _reclaim(self, claim: Obj) -> None:
        meta = claim["metadata"]
        volume = (claim.get("spec") or {}).get("volumeName") or f"pvc-{meta['uid']}"
        with contextlib.suppress(ApiError):
            self.store.delete_snapshot("persistentvolumes", None, volume)
        if self.data_dir is None:
            return
        try:
            path = claim_dir(self.data_dir, meta.get("namespace") or "default", meta["name"])
        except PathEscape as exc:  # never rmtree a path that is not ours
            log.warning("claim %s not reclaimed: %s", meta["name"], exc)
            return
        task = asyncio.create_task(asyncio.to_thread(shutil.rmtree, path, True))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
