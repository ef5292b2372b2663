"""Defaulting and validation of objects on their way into the store, as the kube-apiserver does.

``prepare(plural, obj, old)`` is called by the store on every create/update/patch that comes from a
client (not on controllers' ``mutate``): it fills the defaults Kubernetes applies (pod restartPolicy,
service type, rc selector, job selector and counts, …) and raises a 422 ``Invalid`` ApiError whose
details.causes name the offending fields (``spec.containers[0].image``).
"""

from __future__ import annotations

import re
from typing import Any

from bayport.cluster import pod_security
from bayport.cluster.errors import ApiError, invalid
from bayport.cluster.resources import RESOURCES
from bayport.pod_security import BASELINE

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_PROTOCOLS = ("TCP", "UDP", "SCTP")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
              "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
              "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                  "'-' or '.', and must start and end with an alphanumeric character (e.g. "
                  "'example.com', regex used for validation is "
                  "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
                "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
                "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")

Causes = list[tuple[str, str]]


def check_label_name(value: str, path: str, causes: Causes) -> None:
    if len(value) > 63:
        causes.append((path, f'Invalid value: "{value}": must be no more than 63 characters'))
    elif not _DNS1123_LABEL.match(value):
        causes.append((path, f'Invalid value: "{value}": {_LABEL_MSG}'))


def check_subdomain_name(value: str, path: str, causes: Causes) -> None:
    if len(value) > 253:
        causes.append((path, f'Invalid value: "{value}": must be no more than 253 characters'))
    elif not _DNS1123_SUBDOMAIN.match(value):
        causes.append((path, f'Invalid value: "{value}": {_SUBDOMAIN_MSG}'))


def _check_name(plural: str, name: str, causes: Causes) -> None:
    if not name:
        causes.append(("metadata.name", "Required value: name or generateName is required"))
    elif plural == "namespaces":
        check_label_name(name, "metadata.name", causes)
    elif plural == "services":
        if len(name) > 63:
            causes.append(("metadata.name", f'Invalid value: "{name}": must be no more than 63 characters'))
        elif not _DNS1035_LABEL.match(name):
            causes.append(("metadata.name", f'Invalid value: "{name}": {_DNS1035_MSG}'))
    elif plural != "events":
        check_subdomain_name(name, "metadata.name", causes)


def _check_labels(meta: dict[str, Any], causes: Causes) -> None:
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is None:
            continue
        if not isinstance(value, dict):
            causes.append((f"metadata.{field}", "Invalid value: must be a map of strings"))
            continue
        for key, item in value.items():
            if not isinstance(item, str):
                causes.append((f"metadata.{field}", f'Invalid value: "{key}": values must be strings'))
            elif field == "labels" and len(item) > 63:
                causes.append(("metadata.labels", f'Invalid value: "{item}": must be no more than '
                               "63 characters"))


# --- defaults -------------------------------------------------------------------------------------


def _pull_policy(image: str) -> str:
    tail = image.rsplit("/", 1)[-1]
    if "@" in tail:
        return "IfNotPresent"
    if ":" not in tail or tail.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    for field in ("containers", "initContainers"):
        containers = spec.get(field)
        if not isinstance(containers, list):
            continue
        for c in containers:
            if not isinstance(c, dict):
                continue
            if isinstance(c.get("image"), str):
                c.setdefault("imagePullPolicy", _pull_policy(c["image"]))
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            for port in c.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


def _default_pod(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    default_pod_spec(spec)
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("tolerations", [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300},
    ])
    status = obj.get("status")
    if not status:
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}


def _default_service(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])
    if old is not None:
        old_spec = old.get("spec") or {}
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
            spec["clusterIPs"] = old_spec.get("clusterIPs") or [old_spec["clusterIP"]]
    if spec.get("clusterIP") and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [spec["clusterIP"]]
    obj.setdefault("status", {"loadBalancer": {}})


def _default_rc(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    spec.setdefault("minReadySeconds", 0)
    template = spec.get("template")
    if isinstance(template, dict):
        tmeta = template.setdefault("metadata", {})
        labels = tmeta.get("labels") or {}
        if not spec.get("selector") and labels:
            spec["selector"] = dict(labels)
        meta = obj["metadata"]
        if not meta.get("labels") and labels:
            meta["labels"] = dict(labels)
        if isinstance(template.get("spec"), dict):
            default_pod_spec(template["spec"])
    obj.setdefault("status", {"replicas": 0})


def _default_job(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    template = spec.get("template")
    uid = obj["metadata"].get("uid", "")
    name = obj["metadata"].get("name", "")
    if old is not None and not spec.get("selector"):
        spec["selector"] = (old.get("spec") or {}).get("selector")
    if not spec.get("manualSelector") and not spec.get("selector"):
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    if isinstance(template, dict):
        tmeta = template.setdefault("metadata", {})
        labels = tmeta.setdefault("labels", {})
        if isinstance(labels, dict) and not spec.get("manualSelector"):
            labels.setdefault("batch.kubernetes.io/controller-uid", uid)
            labels.setdefault("batch.kubernetes.io/job-name", name)
            labels.setdefault("controller-uid", uid)
            labels.setdefault("job-name", name)
        if isinstance(template.get("spec"), dict):
            default_pod_spec(template["spec"])
    obj.setdefault("status", {})


def _default_pvc(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    if isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")
    status = obj.get("status")
    if not status:
        obj["status"] = {"phase": "Pending"}


def _default_namespace(obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    labels = meta.setdefault("labels", {})
    if isinstance(labels, dict):
        labels["kubernetes.io/metadata.name"] = meta.get("name", "")
    obj.setdefault("spec", {"finalizers": ["kubernetes"]})
    status = obj.get("status")
    if not status or not status.get("phase"):
        obj["status"] = {"phase": "Active"}


def apply_defaults(plural: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> None:
    if plural == "pods":
        _default_pod(obj)
    elif plural == "services":
        _default_service(obj, old)
    elif plural == "replicationcontrollers":
        _default_rc(obj)
    elif plural == "jobs":
        _default_job(obj, old)
    elif plural == "persistentvolumeclaims":
        _default_pvc(obj)
    elif plural == "namespaces":
        _default_namespace(obj)


# --- validation -----------------------------------------------------------------------------------


def _check_port(value: Any, path: str, causes: Causes) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        causes.append((path, f"Invalid value: {value!r}: must be between 1 and 65535, inclusive"))


def _check_protocol(port: dict[str, Any], path: str, causes: Causes) -> None:
    proto = port.get("protocol", "TCP")
    if proto not in _PROTOCOLS:
        causes.append((f"{path}.protocol", f'Unsupported value: "{proto}": supported values: '
                       '"SCTP", "TCP", "UDP"'))


def validate_pod_spec(spec: Any, path: str, causes: Causes,
                      restart_policies: tuple[str, ...] = ("Always", "OnFailure", "Never")) -> None:
    if not isinstance(spec, dict):
        causes.append((path, "Required value"))
        return
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        causes.append((f"{path}.containers", "Required value"))
        containers = []
    seen: set[str] = set()
    for field in ("initContainers", "containers"):
        items = spec.get(field) if field == "initContainers" else containers
        if not isinstance(items, list):
            continue
        for i, c in enumerate(items):
            cpath = f"{path}.{field}[{i}]"
            if not isinstance(c, dict):
                causes.append((cpath, "Invalid value: must be an object"))
                continue
            name = c.get("name")
            if not name or not isinstance(name, str):
                causes.append((f"{cpath}.name", "Required value"))
            else:
                check_label_name(name, f"{cpath}.name", causes)
                if name in seen:
                    causes.append((f"{cpath}.name", f'Duplicate value: "{name}"'))
                seen.add(name)
            image = c.get("image")
            if not image or not isinstance(image, str) or not image.strip():
                causes.append((f"{cpath}.image", "Required value"))
            ports = c.get("ports") or []
            if not isinstance(ports, list):
                causes.append((f"{cpath}.ports", "Invalid value: must be a list"))
                continue
            for j, port in enumerate(ports):
                ppath = f"{cpath}.ports[{j}]"
                if not isinstance(port, dict):
                    causes.append((ppath, "Invalid value: must be an object"))
                    continue
                _check_port(port.get("containerPort"), f"{ppath}.containerPort", causes)
                _check_protocol(port, ppath, causes)
    policy = spec.get("restartPolicy", "Always")
    if policy not in restart_policies:
        supported = ", ".join(f'"{p}"' for p in restart_policies)
        causes.append((f"{path}.restartPolicy", f'Unsupported value: "{policy}": supported values: '
                       f"{supported}"))
    names = _validate_volumes(spec.get("volumes") or [], f"{path}.volumes", causes)
    for field in ("initContainers", "containers"):
        items = spec.get(field) if field == "initContainers" else containers
        for i, c in enumerate(items if isinstance(items, list) else []):
            if isinstance(c, dict):
                _validate_mounts(c.get("volumeMounts") or [], f"{path}.{field}[{i}].volumeMounts", names,
                                 causes)


# Where a volume source names another object, and that name's field (all become paths or lookups).
_SOURCE_NAMES = {"persistentVolumeClaim": "claimName", "configMap": "name", "secret": "secretName"}


def _validate_volumes(volumes: Any, path: str, causes: Causes) -> set[str]:
    """Volume names are DNS-1123 labels, as Kubernetes requires: a name becomes a directory on
    the node (podman_volumes), so ``/`` or ``../../etc`` must never get that far."""
    names: set[str] = set()
    if not isinstance(volumes, list):
        causes.append((path, "Invalid value: must be a list"))
        return names
    for i, vol in enumerate(volumes):
        vpath = f"{path}[{i}]"
        if not isinstance(vol, dict):
            causes.append((vpath, "Invalid value: must be an object"))
            continue
        vname = vol.get("name")
        if not vname or not isinstance(vname, str):
            causes.append((f"{vpath}.name", "Required value"))
            continue
        check_label_name(vname, f"{vpath}.name", causes)
        if vname in names:
            causes.append((f"{vpath}.name", f'Duplicate value: "{vname}"'))
        names.add(vname)
        for source, field in _SOURCE_NAMES.items():
            if source not in vol:
                continue
            ref = (vol.get(source) or {}).get(field) if isinstance(vol.get(source), dict) else None
            if not ref or not isinstance(ref, str):
                causes.append((f"{vpath}.{source}.{field}", "Required value"))
            else:
                check_subdomain_name(ref, f"{vpath}.{source}.{field}", causes)
    return names


def _validate_mounts(mounts: Any, path: str, volumes: set[str], causes: Causes) -> None:
    if not isinstance(mounts, list):
        causes.append((path, "Invalid value: must be a list"))
        return
    for j, mount in enumerate(mounts):
        mpath = f"{path}[{j}]"
        if not isinstance(mount, dict):
            causes.append((mpath, "Invalid value: must be an object"))
            continue
        mname = mount.get("name")
        if not mname or not isinstance(mname, str):
            causes.append((f"{mpath}.name", "Required value"))
        elif mname not in volumes:
            causes.append((f"{mpath}.name", f'Not found: "{mname}"'))
        if not mount.get("mountPath"):
            causes.append((f"{mpath}.mountPath", "Required value"))
        sub_path = mount.get("subPath")
        if sub_path:
            parts = str(sub_path).split("/")
            if str(sub_path).startswith("/"):
                causes.append((f"{mpath}.subPath", f'Invalid value: "{sub_path}": must be a relative path'))
            elif ".." in parts:
                causes.append((f"{mpath}.subPath", f'Invalid value: "{sub_path}": must not contain \'..\''))


def _validate_service(obj: dict[str, Any], causes: Causes) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        causes.append(("spec", "Required value"))
        return
    stype = spec.get("type", "ClusterIP")
    if stype not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        causes.append(("spec.type", f'Unsupported value: "{stype}": supported values: "ClusterIP", '
                       '"ExternalName", "LoadBalancer", "NodePort"'))
    ports = spec.get("ports") or []
    if not ports and stype != "ExternalName" and spec.get("clusterIP") != "None":
        causes.append(("spec.ports", "Required value"))
    names: set[str] = set()
    for i, port in enumerate(ports if isinstance(ports, list) else []):
        path = f"spec.ports[{i}]"
        if not isinstance(port, dict):
            causes.append((path, "Invalid value: must be an object"))
            continue
        _check_port(port.get("port"), f"{path}.port", causes)
        _check_protocol(port, path, causes)
        name = port.get("name")
        if len(ports) > 1 and not name:
            causes.append((f"{path}.name", "Required value"))
        elif name:
            if name in names:
                causes.append((f"{path}.name", f'Duplicate value: "{name}"'))
            names.add(name)
        target = port.get("targetPort")
        if isinstance(target, int):
            _check_port(target, f"{path}.targetPort", causes)


def _validate_rc(obj: dict[str, Any], causes: Causes) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        causes.append(("spec", "Required value"))
        return
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 0:
        causes.append(("spec.replicas", f"Invalid value: {replicas!r}: must be greater than or equal to 0"))
    selector = spec.get("selector") or {}
    if not selector:
        causes.append(("spec.selector", "Required value"))
    template = spec.get("template")
    if not isinstance(template, dict):
        causes.append(("spec.template", "Required value"))
        return
    labels = (template.get("metadata") or {}).get("labels") or {}
    if selector and any(labels.get(k) != v for k, v in selector.items()):
        causes.append(("spec.template.metadata.labels", f"Invalid value: {labels!r}: `selector` does "
                       "not match template `labels`"))
    validate_pod_spec(template.get("spec"), "spec.template.spec", causes, ("Always",))


def _validate_job(obj: dict[str, Any], causes: Causes) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        causes.append(("spec", "Required value"))
        return
    template = spec.get("template")
    if not isinstance(template, dict):
        causes.append(("spec.template", "Required value"))
        return
    tspec = template.get("spec")
    if isinstance(tspec, dict) and "restartPolicy" not in tspec:
        causes.append(("spec.template.spec.restartPolicy",
                       'Required value: valid values: "OnFailure", "Never"'))
    else:
        validate_pod_spec(tspec, "spec.template.spec", causes, ("OnFailure", "Never"))
    for field in ("parallelism", "completions", "backoffLimit"):
        value = spec.get(field)
        if value is not None and (not isinstance(value, int) or value < 0):
            causes.append((f"spec.{field}", f"Invalid value: {value!r}: must be greater than or equal to 0"))
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if selector and any(labels.get(k) != v for k, v in selector.items()):
        causes.append(("spec.template.metadata.labels", f"Invalid value: {labels!r}: `selector` does "
                       "not match template `labels`"))


def _validate_pvc(obj: dict[str, Any], causes: Causes) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        causes.append(("spec", "Required value"))
        return
    modes = spec.get("accessModes")
    if not modes:
        causes.append(("spec.accessModes", "Required value"))
    else:
        for i, mode in enumerate(modes):
            if mode not in ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"):
                causes.append((f"spec.accessModes[{i}]", f'Unsupported value: "{mode}": supported values: '
                               '"ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"'))
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if not storage and not spec.get("volumeName"):
        causes.append(("spec.resources[storage]", "Required value"))


_VALIDATORS = {
    "services": _validate_service,
    "replicationcontrollers": _validate_rc,
    "jobs": _validate_job,
    "persistentvolumeclaims": _validate_pvc,
}

_POD_MUTABLE = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")


def _validate_pod_update(new: dict[str, Any], old: dict[str, Any], causes: Causes) -> None:
    def comparable(spec: dict[str, Any], keep_node: str) -> dict[str, Any]:
        result = {k: v for k, v in spec.items() if k not in _POD_MUTABLE}
        result["nodeName"] = spec.get("nodeName") or keep_node
        for field in ("containers", "initContainers"):
            if isinstance(result.get(field), list):
                result[field] = [{k: v for k, v in c.items() if k != "image"}
                                 if isinstance(c, dict) else c for c in result[field]]
        return result

    old_spec = old.get("spec") or {}
    new_spec = new.get("spec") or {}
    old_node = old_spec.get("nodeName") or ""
    if comparable(new_spec, old_node) != comparable(old_spec, new_spec.get("nodeName") or ""):
        causes.append(("spec", "Forbidden: pod updates may not change fields other than "
                       "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                       "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                       "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if "
                       "it was previously negative)"))


def prepare(plural: str, obj: dict[str, Any], old: dict[str, Any] | None = None, *,
            pod_security_level: str = BASELINE) -> None:
    """Default ``obj`` in place, validate it (422) and admit its pod at ``pod_security_level``
    (403, ``cluster.pod_security``); ``old`` is the stored object on updates."""
    res = RESOURCES[plural]
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise invalid(res.kind, "", [("metadata", "Required value")], group=res.group)
    apply_defaults(plural, obj, old)
    causes: Causes = []
    name = meta.get("name") or ""
    if not isinstance(name, str):
        raise invalid(res.kind, "", [("metadata.name", "Invalid value: must be a string")],
                      group=res.group)
    _check_name(plural, name, causes)
    _check_labels(meta, causes)
    if plural == "pods":
        validate_pod_spec(obj.get("spec"), "spec", causes)
        if old is not None and not causes:
            _validate_pod_update(obj, old, causes)
    else:
        validator = _VALIDATORS.get(plural)
        if validator is not None:
            validator(obj, causes)
    if causes:
        raise invalid(res.kind, name, causes, group=res.group)
    pod_security.admit(plural, obj, old, pod_security_level)


def check_object_kind(plural: str, obj: Any) -> dict[str, Any]:
    """The body of a write must be an object of the kind the URL names (400 otherwise)."""
    res = RESOURCES[plural]
    if not isinstance(obj, dict):
        raise ApiError(400, "BadRequest", "the body of the request must be a JSON object")
    kind = obj.get("kind")
    if kind and kind != res.kind:
        raise ApiError(400, "BadRequest", f"the API version in the data ({obj.get('apiVersion')}) does "
                       f"not match the expected API version ({res.api_version})"
                       if obj.get("apiVersion") not in (None, res.api_version)
                       else f"the kind in the data ({kind}) does not match the expected kind ({res.kind})")
    return obj
