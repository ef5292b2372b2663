"""Pod, Service and ReplicationController: what the API hands the conductor and gets back.

The API builds one from a validated manifest and its freshly written row; the conductor
creates the Kubernetes object (``bayport.conductor.workloads``), records the cluster's
answer on the row and returns the object as the row now reads. Same names on the wire as
Magnum's ``magnum_object.name`` ``Pod``/``Service``/``ReplicationController``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from bayport.objects.base import BayportObject

COMMON_FIELDS = (
    "uuid", "name", "namespace", "bay_uuid", "project_id", "user_id", "labels", "manifest",
    "manifest_url", "status", "status_reason", "k8s_uid", "created_at", "updated_at", "deleted_at",
)


class Workload(BayportObject):
    """Fields every workload row has; subclasses add their kind's own."""

    KIND: ClassVar[str] = ""

    uuid: str
    name: str
    namespace: str = "default"
    bay_uuid: str
    project_id: str = ""
    user_id: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    manifest: str | None = None
    manifest_url: str | None = None
    status: str = "Creating"
    status_reason: str | None = None
    k8s_uid: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None

    @classmethod
    def of_row(cls, row: Any) -> Workload:
        """The object for a ``workloads`` row (any object with the same attribute names)."""
        data = {f: getattr(row, f) for f in cls.model_fields}
        # NULL in a column the kind does not use reads as the field's default ([] / {} / 1).
        return cls.loaded(**{k: v for k, v in data.items()
                             if v is not None or cls.model_fields[k].is_required()
                             or cls.model_fields[k].get_default(call_default_factory=True) is None})


class Pod(Workload):
    OBJ_NAME = "Pod"
    KIND = "Pod"

    images: list[str] = Field(default_factory=list)
    host: str | None = None
    pod_ip: str | None = None
    port_id: str | None = None


class Service(Workload):
    OBJ_NAME = "Service"
    KIND = "Service"

    selector: dict[str, str] = Field(default_factory=dict)
    ports: list[dict[str, Any]] = Field(default_factory=list)
    ip: str | None = None


class ReplicationController(Workload):
    OBJ_NAME = "ReplicationController"
    KIND = "ReplicationController"

    selector: dict[str, str] = Field(default_factory=dict)
    replicas: int = 1
    ready_replicas: int = 0
    images: list[str] = Field(default_factory=list)


WORKLOAD_CLASSES: dict[str, type[Workload]] = {
    cls.KIND: cls for cls in (Pod, Service, ReplicationController)}
