"""Admission of the pod-network annotations: only the pod-network controller may set them.

A node binds the address the ``kuryr.org/neutron-port`` annotation names, so whoever writes that
annotation chooses a pod's address — another pod's, a Service's, 127.0.0.1. Bayport's network
controller writes it from IPAM with a token of its own (``identity.NETWORK``); every other
request that would set, change or remove a ``kuryr.org/*`` or ``bayport.io/port-id``
annotation — on a pod, or on the pod template of a ReplicationController or Job, whose pods
the controllers create with the template's annotations — is refused as 422 Invalid with a
FieldValueForbidden cause, as the API server refuses a field a user may not set (a client that
relays it, Bayport's conductor, reports the manifest as the user's fault, not a credential's). The store calls
``check`` on every create and update (``Store.write_admission``); in-process writers (the
controllers) have no request identity and pass.
"""

from __future__ import annotations

from typing import Any

from bayport.cluster.errors import invalid
from bayport.cluster.identity import CURRENT
from bayport.cluster.resources import RESOURCES

PORT_ID = "bayport.io/port-id"                # the names of bayport.network.annotation_keys
PROTECTED_PREFIX = "kuryr.org/"

Obj = dict[str, Any]
# Where pod metadata sits in each kind that carries pods: the object itself, a pod template.
_TEMPLATE_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "pods": ((),),
    "replicationcontrollers": (("spec", "template"),),
    "jobs": (("spec", "template"),),
}


def protected(key: str) -> bool:
    return key.startswith(PROTECTED_PREFIX) or key == PORT_ID


def _protected_annotations(obj: Obj | None, path: tuple[str, ...]) -> dict[str, Any]:
    node: Any = obj
    for step in path:
        node = node.get(step) if isinstance(node, dict) else None
    meta = node.get("metadata") if isinstance(node, dict) else None
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if not isinstance(annotations, dict):
        return {}
    return {k: v for k, v in annotations.items() if isinstance(k, str) and protected(k)}


def check(plural: str, new: Obj, old: Obj | None) -> None:
    """422 when the request's identity is not the pod-network controller and the write would
    set, change or remove a protected annotation of ``new`` (``old`` is None on create)."""
    paths = _TEMPLATE_PATHS.get(plural)
    identity = CURRENT.get()
    if paths is None or identity is None or identity.pod_network:
        return
    for path in paths:
        before, after = _protected_annotations(old, path), _protected_annotations(new, path)
        if before == after:
            continue
        key = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))[0]
        where = ".".join((*path, "metadata", "annotations"))
        res = RESOURCES[plural]
        raise invalid(res.kind, (new.get("metadata") or {}).get("name") or "", [(
            f"{where}[{key}]", f'Forbidden: set or changed only by Bayport\'s pod-network controller, '
                               f'not by User "{identity.user}"')], group=res.group)
