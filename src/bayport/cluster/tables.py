"""Server-side printing: the meta.k8s.io/v1 Table kubectl asks for on ``get`` (and ``get -w``).

The HTTP layer calls ``to_table`` when the Accept header carries ``as=Table``; each kind has the
columns ``kubectl get`` prints for it (priority 1 columns only with ``-o wide``), computed from
the object as kubectl's own printers do (pod STATUS from container states, node ROLES from
labels, job STATUS from conditions …).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

Cells = list[Any]
Column = tuple[str, str, int, str]                      # name, type, priority, description
_NAME: Column = ("Name", "string", 0, "Name must be unique within a namespace.")
_AGE: Column = ("Age", "string", 0, "CreationTimestamp is a timestamp representing the server time "
                "when this object was created.")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """kubectl's duration format: 5s, 3m2s, 15m, 4h10m, 2d3h, 3y20d …"""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years, days = hours // 24 // 365, (hours // 24) % 365
    if hours < 24 * 365 * 8 and days:
        return f"{years}y{days}d"
    return f"{years}y"


def _age(obj: dict[str, Any], now: datetime) -> str:
    created = _parse_time(obj["metadata"].get("creationTimestamp"))
    return human_duration((now - created).total_seconds()) if created else "<unknown>"


def _since(value: Any, now: datetime) -> str:
    ts = _parse_time(value)
    return human_duration((now - ts).total_seconds()) if ts else "<unknown>"


def _or_none(value: Any) -> str:
    return str(value) if value not in (None, "", [], {}) else "<none>"


def _labels_text(labels: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


def _condition(obj: dict[str, Any], kind: str) -> str | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return str(cond.get("status"))
    return None


# --- per-kind rows ----------------------------------------------------------------------------------


def _node_row(obj: dict[str, Any], now: datetime) -> Cells:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    ready = _condition(obj, "Ready")
    state = "Ready" if ready == "True" else ("NotReady" if ready is not None else "Unknown")
    if spec.get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = meta.get("labels") or {}
    roles = sorted({k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")}
                   | ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set()))
    info = status.get("nodeInfo") or {}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    return [meta["name"], state, ",".join(r for r in roles if r) or "<none>", _age(obj, now),
            info.get("kubeletVersion", ""), _or_none(addresses.get("InternalIP")),
            _or_none(addresses.get("ExternalIP")), _or_none(info.get("osImage")),
            _or_none(info.get("kernelVersion")), _or_none(info.get("containerRuntimeVersion"))]


def pod_status_text(obj: dict[str, Any]) -> tuple[str, int, int, int]:
    """(STATUS, ready containers, total containers, restarts) as ``kubectl get pods`` shows them."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    total = len(spec.get("containers") or [])
    reason = status.get("reason") or status.get("phase") or "Unknown"
    restarts = 0
    initializing = False
    init_specs = spec.get("initContainers") or []
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += int(cs.get("restartCount") or 0)
        state = cs.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term and term.get("exitCode") == 0:
            continue
        initializing = True
        if term:
            reason = "Init:" + (term.get("reason") or f"ExitCode:{term.get('exitCode')}")
        elif wait and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        break
    ready = 0
    if not initializing:
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            state = cs.get("state") or {}
            wait, term = state.get("waiting"), state.get("terminated")
            if wait and wait.get("reason"):
                reason = wait["reason"]
            elif term and term.get("reason"):
                reason = term["reason"]
            elif term:
                reason = (f"Signal:{term['signal']}" if term.get("signal")
                          else f"ExitCode:{term.get('exitCode')}")
            elif cs.get("ready") and state.get("running"):
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition(obj, "Ready") == "True" else "NotReady"
    if obj["metadata"].get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return reason, ready, total, restarts


def _pod_row(obj: dict[str, Any], now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    reason, ready, total, restarts = pod_status_text(obj)
    gates = spec.get("readinessGates") or []
    return [obj["metadata"]["name"], f"{ready}/{total}", reason, str(restarts), _age(obj, now),
            _or_none(status.get("podIP")), _or_none(spec.get("nodeName")),
            _or_none(status.get("nominatedNodeName")), f"0/{len(gates)}" if gates else "<none>"]


def _namespace_row(obj: dict[str, Any], now: datetime) -> Cells:
    return [obj["metadata"]["name"], (obj.get("status") or {}).get("phase", ""), _age(obj, now)]


def _service_ports(spec: dict[str, Any]) -> str:
    parts = []
    for port in spec.get("ports") or []:
        text = str(port.get("port"))
        if port.get("nodePort"):
            text += f":{port['nodePort']}"
        parts.append(f"{text}/{port.get('protocol', 'TCP')}")
    return ",".join(parts) or "<none>"


def _service_row(obj: dict[str, Any], now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    stype = spec.get("type", "ClusterIP")
    external = list(spec.get("externalIPs") or [])
    if stype == "LoadBalancer":
        ingress = [i.get("ip") or i.get("hostname") for i in
                   (status.get("loadBalancer") or {}).get("ingress") or []]
        external = [*ingress, *external] or ["<pending>"]
    elif stype == "ExternalName":
        external = [spec.get("externalName", "")]
    selector = spec.get("selector")
    return [obj["metadata"]["name"], stype, _or_none(spec.get("clusterIP")),
            ",".join(external) or "<none>", _service_ports(spec), _age(obj, now),
            _labels_text(selector)]


def _template_columns(template: dict[str, Any]) -> tuple[str, str]:
    containers = (template.get("spec") or {}).get("containers") or []
    return (",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers))


def _rc_row(obj: dict[str, Any], now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _template_columns(spec.get("template") or {})
    return [obj["metadata"]["name"], int(spec.get("replicas", 1)), int(status.get("replicas") or 0),
            int(status.get("readyReplicas") or 0), _age(obj, now), names, images,
            _labels_text(spec.get("selector"))]


def _job_status(obj: dict[str, Any]) -> str:
    for kind, text in (("Failed", "Failed"), ("Complete", "Complete"), ("Suspended", "Suspended"),
                       ("FailureTarget", "FailureTarget"), ("SuccessCriteriaMet", "SuccessCriteriaMet")):
        if _condition(obj, kind) == "True":
            return text
    if obj["metadata"].get("deletionTimestamp"):
        return "Terminating"
    return "Running"


def _job_row(obj: dict[str, Any], now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    succeeded = int(status.get("succeeded") or 0)
    completions = spec.get("completions")
    if completions is not None:
        done = f"{succeeded}/{completions}"
    else:
        parallelism = int(spec.get("parallelism") or 1)
        done = f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"
    start = _parse_time(status.get("startTime"))
    end = _parse_time(status.get("completionTime")) or now
    duration = human_duration((end - start).total_seconds()) if start else ""
    names, images = _template_columns(spec.get("template") or {})
    match = (spec.get("selector") or {}).get("matchLabels")
    return [obj["metadata"]["name"], _job_status(obj), done, duration, _age(obj, now), names, images,
            _labels_text(match)]


_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
          "ReadWriteOncePod": "RWOP"}


def _modes(modes: Iterable[str] | None) -> str:
    return ",".join(_MODES.get(m, m) for m in modes or [])


def _pvc_row(obj: dict[str, Any], now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    phase = "Terminating" if obj["metadata"].get("deletionTimestamp") else status.get("phase", "")
    capacity = (status.get("capacity") or {}).get("storage", "")
    return [obj["metadata"]["name"], phase, spec.get("volumeName", ""), capacity,
            _modes(status.get("accessModes")), spec.get("storageClassName") or "",
            spec.get("volumeAttributesClassName") or "<unset>", _age(obj, now),
            spec.get("volumeMode", "Filesystem")]


def _pv_row(obj: dict[str, Any], now: datetime) -> Cells:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    claim = spec.get("claimRef") or {}
    claim_text = f"{claim.get('namespace')}/{claim.get('name')}" if claim else ""
    return [obj["metadata"]["name"], (spec.get("capacity") or {}).get("storage", ""),
            _modes(spec.get("accessModes")), spec.get("persistentVolumeReclaimPolicy", ""),
            status.get("phase", ""), claim_text, spec.get("storageClassName", ""),
            status.get("reason", ""), _age(obj, now)]


def _event_row(obj: dict[str, Any], now: datetime) -> Cells:
    involved = obj.get("involvedObject") or {}
    last = obj.get("lastTimestamp") or obj.get("eventTime") or obj["metadata"].get("creationTimestamp")
    source = obj.get("source") or {}
    return [_since(last, now), obj.get("type", ""), obj.get("reason", ""),
            f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
            involved.get("fieldPath", ""),
            source.get("component") or obj.get("reportingComponent", ""),
            obj.get("message", ""),
            _since(obj.get("firstTimestamp") or last, now), int(obj.get("count") or 1),
            obj["metadata"]["name"]]


def _endpoints_row(obj: dict[str, Any], now: datetime) -> Cells:
    pairs = []
    for subset in obj.get("subsets") or []:
        ports = subset.get("ports") or [{}]
        for addr in subset.get("addresses") or []:
            for port in ports:
                ip = addr.get("ip", "")
                pairs.append(f"{ip}:{port['port']}" if port.get("port") else ip)
    text = ",".join(pairs[:3]) + (f" + {len(pairs) - 3} more..." if len(pairs) > 3 else "")
    return [obj["metadata"]["name"], text or "<none>", _age(obj, now)]


def _default_row(obj: dict[str, Any], now: datetime) -> Cells:
    return [obj["metadata"]["name"], _age(obj, now)]


def _col(name: str, kind: str = "string", priority: int = 0, description: str = "") -> Column:
    return (name, kind, priority, description)


_PRINTERS: dict[str, tuple[list[Column], Callable[[dict[str, Any], datetime], Cells]]] = {
    "nodes": ([_NAME, _col("Status", description="The status of the node"),
               _col("Roles", description="The roles of the node"), _AGE,
               _col("Version", description="Kubelet Version reported by the node."),
               _col("Internal-IP", priority=1), _col("External-IP", priority=1),
               _col("OS-Image", priority=1), _col("Kernel-Version", priority=1),
               _col("Container-Runtime", priority=1)], _node_row),
    "pods": ([_NAME, _col("Ready", description="The aggregate readiness state of this pod for "
                          "accepting traffic."),
              _col("Status", description="The aggregate status of the containers in this pod."),
              _col("Restarts", "string", description="The number of times the containers in this "
                   "pod have been restarted and when the last container in this pod has restarted."),
              _AGE, _col("IP", priority=1), _col("Node", priority=1),
              _col("Nominated Node", priority=1), _col("Readiness Gates", priority=1)], _pod_row),
    "namespaces": ([_NAME, _col("Status", description="The status of the namespace"), _AGE],
                   _namespace_row),
    "services": ([_NAME, _col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"),
                  _AGE, _col("Selector", priority=1)], _service_row),
    "replicationcontrollers": ([_NAME, _col("Desired", "integer"), _col("Current", "integer"),
                                _col("Ready", "integer"), _AGE, _col("Containers", priority=1),
                                _col("Images", priority=1), _col("Selector", priority=1)], _rc_row),
    "jobs": ([_NAME, _col("Status"), _col("Completions"), _col("Duration"), _AGE,
              _col("Containers", priority=1), _col("Images", priority=1),
              _col("Selector", priority=1)], _job_row),
    "persistentvolumeclaims": ([_NAME, _col("Status"), _col("Volume"), _col("Capacity"),
                                _col("Access Modes"), _col("StorageClass"),
                                _col("VolumeAttributesClass"), _AGE,
                                _col("VolumeMode", priority=1)], _pvc_row),
    "persistentvolumes": ([_NAME, _col("Capacity"), _col("Access Modes"), _col("Reclaim Policy"),
                           _col("Status"), _col("Claim"), _col("StorageClass"), _col("Reason"),
                           _AGE], _pv_row),
    "events": ([_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"),
                _col("Subobject", priority=1), _col("Source", priority=1), _col("Message"),
                _col("First Seen", priority=1), _col("Count", "integer", 1),
                _col("Name", priority=1)], _event_row),
    "endpoints": ([_NAME, _col("Endpoints"), _AGE], _endpoints_row),
}


def column_definitions(plural: str) -> list[dict[str, Any]]:
    columns = _PRINTERS.get(plural, ([_NAME, _AGE], _default_row))[0]
    return [{"name": name, "type": kind, "format": "name" if name == "Name" else "",
             "description": description, "priority": priority}
            for name, kind, priority, description in columns]


def partial_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def to_table(plural: str, objects: Iterable[dict[str, Any]], *, include_object: str = "Metadata",
             headers: bool = True, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table of ``objects``; ``include_object`` is None | Metadata | Object."""
    printer = _PRINTERS.get(plural, ([_NAME, _AGE], _default_row))[1]
    now = datetime.now(UTC)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": printer(obj, now)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata or {},
            "columnDefinitions": column_definitions(plural) if headers else [], "rows": rows}
