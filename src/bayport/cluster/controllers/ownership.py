"""Who owns an object and which objects a selector picks: the links between controllers' objects.

Replication and job controllers stamp ``ownerReferences`` (controller: true, blockOwnerDeletion)
on the pods they create and find them again through the informer's owner index; the store's
cascading delete follows the same references. Services and replication controllers select pods
by equality-based label maps, matched here without going through selector strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Obj = dict[str, Any]


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    return {"apiVersion": owner.get("apiVersion", "v1"), "kind": owner.get("kind", ""),
            "name": meta["name"], "uid": meta["uid"], "controller": True,
            "blockOwnerDeletion": True}


def controller_of(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ownerReference with controller: true, if any."""
    for ref in obj["metadata"].get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def controller_uid(obj: Mapping[str, Any], kind: str | None = None) -> str | None:
    ref = controller_of(obj)
    if ref is None or (kind is not None and ref.get("kind") != kind):
        return None
    uid = ref.get("uid")
    return str(uid) if uid else None


def owner_uids(obj: Mapping[str, Any]) -> list[str]:
    return [str(r["uid"]) for r in obj["metadata"].get("ownerReferences") or ()
            if isinstance(r, dict) and r.get("uid")]


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    labels = obj["metadata"].get("labels")
    return labels if isinstance(labels, dict) else {}


def selector_matches(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """Equality-based selector (a Service's or ReplicationController's); empty selects nothing."""
    if not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


def is_terminal(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_ready(pod: Mapping[str, Any]) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def pod_ip(pod: Mapping[str, Any]) -> str | None:
    ip = (pod.get("status") or {}).get("podIP")
    return str(ip) if ip else None
