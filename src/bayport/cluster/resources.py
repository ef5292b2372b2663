"""The resource kinds the embedded cluster serves, keyed by plural.

The store uses this table for scoping (namespaced or not) and for the kind/apiVersion it stamps
on objects; the HTTP layer builds discovery (APIResourceList) and routing from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Subresource:
    name: str                        # "status", "log", "binding", "scale"
    kind: str
    verbs: tuple[str, ...]
    group: str = ""                  # set when the subresource kind lives in another group (Scale)
    version: str = ""


@dataclass(frozen=True)
class Resource:
    group: str                       # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = _ALL_VERBS
    singular: str = ""
    categories: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = field(default=())

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    def has_status(self) -> bool:
        return any(s.name == "status" for s in self.subresources)


def _status(kind: str) -> Subresource:
    return Subresource("status", kind, ("get", "patch", "update"))


RESOURCES: dict[str, Resource] = {
    r.plural: r
    for r in (
        Resource("", "v1", "namespaces", "Namespace", False, ("ns",),
                 ("create", "delete", "get", "list", "patch", "update", "watch"), "namespace",
                 subresources=(_status("Namespace"),)),
        Resource("", "v1", "nodes", "Node", False, ("no",), singular="node",
                 subresources=(_status("Node"),)),
        Resource("", "v1", "pods", "Pod", True, ("po",), singular="pod", categories=("all",),
                 subresources=(_status("Pod"),
                               Subresource("log", "Pod", ("get",)),
                               Subresource("binding", "Binding", ("create",)))),
        Resource("", "v1", "services", "Service", True, ("svc",), singular="service",
                 categories=("all",), subresources=(_status("Service"),)),
        Resource("", "v1", "endpoints", "Endpoints", True, ("ep",), singular="endpoints"),
        Resource("", "v1", "replicationcontrollers", "ReplicationController", True, ("rc",),
                 singular="replicationcontroller", categories=("all",),
                 subresources=(_status("ReplicationController"),
                               Subresource("scale", "Scale", ("get", "patch", "update"),
                                           "autoscaling", "v1"))),
        Resource("", "v1", "events", "Event", True, ("ev",), singular="event"),
        Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",),
                 singular="persistentvolumeclaim",
                 subresources=(_status("PersistentVolumeClaim"),)),
        Resource("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",),
                 singular="persistentvolume", subresources=(_status("PersistentVolume"),)),
        Resource("batch", "v1", "jobs", "Job", True, (), singular="job", categories=("all",),
                 subresources=(_status("Job"),)),
    )
}

KIND_TO_PLURAL: dict[str, str] = {r.kind: r.plural for r in RESOURCES.values()}


def resource(plural: str) -> Resource:
    """The resource for ``plural``; KeyError for kinds this engine does not serve."""
    return RESOURCES[plural]
