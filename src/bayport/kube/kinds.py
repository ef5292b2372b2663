"""The three workload kinds Bayport manages, and how each is read in two directions.

``prepare`` turns manifest text into the v1 object to create plus the values its row
records (name, namespace, labels, images / selector / ports / replicas). ``observe`` reads
an object as the cluster reports it (lightkube's typed model, straight off a watch) into the
row's status fields: pod phase, node and IP; a service's ClusterIP; an RC's ready count.
The API prepares; the conductor creates and the watch observes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lightkube.core.resource import NamespacedResourceG
from lightkube.resources.core_v1 import Pod, ReplicationController, Service

from bayport import errors
from bayport.kube.convert import to_v1
from bayport.kube.manifest import parse_manifest
from bayport.kube.validate import validate
from bayport.network.annotation_keys import PORT_ID

# Every object Bayport creates carries its row's uuid here; the watch selects on it.
UUID_LABEL = "bayport.io/uuid"
DEFAULT_NAMESPACE = "default"
Obj = dict[str, Any]


@dataclass(frozen=True)
class WorkloadKind:
    kind: str                              # the Kubernetes kind
    plural: str                            # the API collection: /v1/<plural>
    prefix: str                            # RPC methods <prefix>_create, <prefix>_delete ...
    resource: type[NamespacedResourceG]    # the lightkube resource
    fields: tuple[str, ...]                # kind-specific row fields the API shows
    summary: tuple[str, ...]               # ... and those shown in a list

    @property
    def k8s_plural(self) -> str:
        return {"Pod": "pods", "Service": "services"}.get(self.kind, "replicationcontrollers")


POD = WorkloadKind("Pod", "pods", "pod", Pod, ("images", "host", "pod_ip", "port_id"),
                   ("images", "host", "pod_ip", "port_id"))
SERVICE = WorkloadKind("Service", "services", "service", Service, ("selector", "ports", "ip"),
                       ("ports", "ip"))
RC = WorkloadKind("ReplicationController", "rcs", "rc", ReplicationController,
                  ("selector", "replicas", "ready_replicas", "images"),
                  ("replicas", "ready_replicas", "images"))
KINDS: dict[str, WorkloadKind] = {k.kind: k for k in (POD, SERVICE, RC)}
BY_PLURAL: dict[str, WorkloadKind] = {k.plural: k for k in (POD, SERVICE, RC)}


@dataclass(frozen=True)
class Prepared:
    """A validated v1 object and what its row records about it."""

    body: Obj
    values: Obj

    @property
    def name(self) -> str:
        return str(self.values["name"])

    @property
    def namespace(self) -> str:
        return str(self.values["namespace"])


def prepare(text: str, kind: WorkloadKind) -> Prepared:
    """Parse, convert to v1, check kind and required fields; InvalidManifest (400) otherwise."""
    doc = parse_manifest(text)
    body = to_v1(doc)
    validate(body, kind.kind)
    return Prepared(body=body, values=describe(body, kind))


def _images(pod_spec: Obj) -> list[str]:
    return [str(c.get("image")) for c in pod_spec.get("containers") or []]


def describe(body: Obj, kind: WorkloadKind) -> Obj:
    """The row values a v1 manifest determines (before the cluster says anything)."""
    meta: Obj = body.get("metadata") or {}
    spec: Obj = body.get("spec") or {}
    values: Obj = {"name": meta["name"], "namespace": meta.get("namespace") or DEFAULT_NAMESPACE,
                   "labels": dict(meta.get("labels") or {})}
    if kind is POD:
        values["images"] = _images(spec)
    elif kind is SERVICE:
        values["selector"] = dict(spec.get("selector") or {})
        values["ports"] = list(spec.get("ports") or [])
    else:
        template: Obj = spec.get("template") or {}
        template_labels = dict((template.get("metadata") or {}).get("labels") or {})
        values["selector"] = dict(spec.get("selector") or template_labels)
        values["replicas"] = spec.get("replicas", 1)
        values["images"] = _images(template.get("spec") or {})
        if not values["labels"]:
            values["labels"] = template_labels
    return values


def labelled(body: Obj, uuid: str, namespace: str) -> Obj:
    """A copy of ``body`` carrying the row uuid label and its namespace, ready to create."""
    meta = dict(body.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), UUID_LABEL: uuid}
    meta["namespace"] = namespace
    return {**body, "metadata": meta}


def to_resource(body: Obj, kind: WorkloadKind) -> NamespacedResourceG:
    """The lightkube object for ``body`` (already validated, so decoding cannot fail here)."""
    try:
        obj: NamespacedResourceG = kind.resource.from_dict(body)  # type: ignore[attr-defined]
    except Exception as exc:
        raise errors.InvalidManifest(f"manifest does not decode as a {kind.kind}: {exc}") from exc
    return obj


# --- observed state ----------------------------------------------------------------------------

def uuid_of(obj: Any) -> str | None:
    labels = obj.metadata.labels if obj.metadata is not None else None
    return labels.get(UUID_LABEL) if labels else None


def observe(kind: WorkloadKind, obj: Any) -> Obj:
    """Row values for ``obj`` as the cluster reports it (a lightkube Pod/Service/RC)."""
    meta = obj.metadata
    values: Obj = {"k8s_uid": meta.uid if meta is not None else None}
    if kind is POD:
        values.update(_observe_pod(obj))
    elif kind is SERVICE:
        spec = obj.spec
        values["ip"] = spec.clusterIP if spec is not None else None
        values["ports"] = [p.to_dict() for p in spec.ports] if spec is not None and spec.ports else []
        values["status"] = "Active"
        values["status_reason"] = None
    else:
        desired = obj.spec.replicas if obj.spec is not None and obj.spec.replicas is not None else 1
        ready = (obj.status.readyReplicas or 0) if obj.status is not None else 0
        values["replicas"] = desired
        values["ready_replicas"] = ready
        values["status"] = "Running" if ready == desired else "Scaling"
        values["status_reason"] = None if ready == desired else f"{ready} of {desired} replicas ready"
    return values


def _observe_pod(pod: Pod) -> Obj:
    spec, status = pod.spec, pod.status
    phase = (status.phase if status is not None else None) or "Pending"
    reason: str | None = None
    if status is not None:
        if status.reason or status.message:
            reason = ": ".join(p for p in (status.reason, status.message) if p)
        elif phase == "Pending":
            waiting = [c.state.waiting.reason for c in status.containerStatuses or []
                       if c.state is not None and c.state.waiting is not None and c.state.waiting.reason]
            reason = waiting[0] if waiting else None
    if pod.metadata is not None and pod.metadata.deletionTimestamp is not None:
        reason = "Terminating"
    annotations = (pod.metadata.annotations if pod.metadata is not None else None) or {}
    return {"status": phase, "status_reason": reason,
            "host": spec.nodeName if spec is not None else None,
            "pod_ip": status.podIP if status is not None else None,
            "port_id": annotations.get(PORT_ID)}
