"""Is a v1 Pod / Service / ReplicationController acceptable? If not, which field and why.

Messages follow Kubernetes' own (``spec.containers[0].image: Required value``) so the user
reads the same words the cluster would have used, before anything is created. After the
checks Bayport cares about (required fields, names, label syntax, volume references, the
RC selector matching its template), the object is decoded into lightkube's typed model,
which catches a wrong type anywhere (``spec.containers[0].ports[0].containerPort``).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from lightkube.resources.core_v1 import Pod, ReplicationController, Service

from bayport import errors
from bayport.pod_security import check_pod, forbidden_message

Obj = dict[str, Any]
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
PROTOCOLS = ("TCP", "UDP", "SCTP")
# Volume sources that name another object (each name is looked up, or becomes a path, on the node).
_SOURCE_NAMES = {"persistentVolumeClaim": "claimName", "configMap": "name", "secret": "secretName"}
MODELS: dict[str, type[msgspec.Struct]] = {
    "Pod": Pod, "Service": Service, "ReplicationController": ReplicationController}


def invalid(path: str, message: str) -> errors.InvalidManifest:
    return errors.InvalidManifest(f"{path}: {message}", field=path)


def validate(doc: Obj, expected_kind: str) -> None:
    """Raise InvalidManifest (400) naming the first bad field; return when ``doc`` is fine."""
    kind = doc.get("kind")
    if kind is None:
        raise invalid("kind", "Required value")
    if kind != expected_kind:
        raise errors.InvalidManifest(
            f"kind: the manifest describes a {kind}, but this endpoint takes a {expected_kind}",
            field="kind")
    _metadata(doc.get("metadata"), dns1035=kind == "Service")
    spec = _mapping(doc, "spec", "spec", required=True)
    if kind == "Pod":
        _pod_spec(spec, "spec")
        pod_security(doc.get("metadata") or {}, spec, "spec")
    elif kind == "Service":
        _service_spec(spec)
    else:
        _rc_spec(spec)
        template = spec["template"]
        pod_security(template.get("metadata") or {}, template["spec"], "spec.template.spec")
    _typed(doc, kind)


def pod_security(meta: Obj, spec: Obj, path: str) -> None:
    """The Pod Security Standards baseline, which the embedded cluster enforces too: refused here
    so ``bayport pod-create`` names the field before anything reaches a cluster."""
    violations = check_pod(meta, spec, path=path)
    if violations:
        field = violations[0].fields[0]
        raise invalid(field, f"Forbidden: {forbidden_message(violations)}")


def _typed(doc: Obj, kind: str) -> None:
    try:
        msgspec.convert(doc, MODELS[kind])
    except msgspec.ValidationError as exc:
        text = str(exc)
        message, _, where = text.partition(" - at `")
        path = where.rstrip("`").removeprefix("$").lstrip(".") or "manifest"
        raise invalid(path, f"Invalid value: {message.replace(' | null', '')}") from exc


def _mapping(parent: Obj, key: str, path: str, *, required: bool = False) -> Obj:
    value = parent.get(key)
    if value is None:
        if required:
            raise invalid(path, "Required value")
        return {}
    if not isinstance(value, dict):
        raise invalid(path, f"Invalid value: must be an object, not {type(value).__name__}")
    return value


def _list(parent: Obj, key: str, path: str, *, required: bool = False) -> list[Any]:
    value = parent.get(key)
    if value is None or value == []:
        if required:
            raise invalid(path, "Required value")
        return []
    if not isinstance(value, list):
        raise invalid(path, f"Invalid value: must be a list, not {type(value).__name__}")
    return value


def _string(parent: Obj, key: str, path: str, *, required: bool = False) -> str | None:
    value = parent.get(key)
    if value is None or value == "":
        if required:
            raise invalid(path, "Required value")
        return None
    if not isinstance(value, str):
        raise invalid(path, f"Invalid value: {value!r}: must be a string")
    return value


def _required_string(parent: Obj, key: str, path: str) -> str:
    value = _string(parent, key, path, required=True)
    if value is None:
        raise invalid(path, "Required value")
    return value


def _port(value: Any, path: str, *, required: bool = True) -> None:
    if value is None:
        if required:
            raise invalid(path, "Required value")
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise invalid(path, f"Invalid value: {value!r}: must be between 1 and 65535, inclusive")


def _name(value: str, path: str, pattern: re.Pattern[str], limit: int, what: str) -> None:
    if len(value) > limit or not pattern.match(value):
        raise invalid(path, f"Invalid value: {value!r}: {what} must consist of lower case alphanumeric "
                            f"characters or '-', at most {limit} characters")


def _metadata(meta: Any, *, dns1035: bool) -> None:
    if meta is None:
        raise invalid("metadata.name", "Required value: name is required")
    if not isinstance(meta, dict):
        raise invalid("metadata", "Invalid value: must be an object")
    name = _required_string(meta, "name", "metadata.name")
    if dns1035:
        _name(name, "metadata.name", DNS1035_LABEL, 63, "a DNS-1035 label (starting with a letter)")
    else:
        _name(name, "metadata.name", DNS1123_SUBDOMAIN, 253, "a DNS-1123 subdomain")
    namespace = _string(meta, "namespace", "metadata.namespace")
    if namespace is not None:
        _name(namespace, "metadata.namespace", DNS1123_LABEL, 63, "a DNS-1123 label")
    labels(_mapping(meta, "labels", "metadata.labels"), "metadata.labels")
    for key, value in _mapping(meta, "annotations", "metadata.annotations").items():
        if not isinstance(value, str):
            raise invalid(f"metadata.annotations.{key}", f"Invalid value: {value!r}: must be a string")


def labels(values: Obj, path: str) -> None:
    """Label keys ([prefix/]name) and values as Kubernetes accepts them; values must be strings."""
    for key, value in values.items():
        prefix, _, name = key.rpartition("/")
        if not name or len(name) > 63 or not LABEL_NAME.match(name) or len(prefix) > 253 or (
                prefix and not DNS1123_SUBDOMAIN.match(prefix)):
            raise invalid(f"{path}", f"Invalid value: {key!r}: not a valid label key")
        if not isinstance(value, str):
            raise invalid(f"{path}.{key}", f"Invalid value: {value!r}: must be a string (quote it)")
        if len(value) > 63 or not LABEL_VALUE.match(value):
            raise invalid(f"{path}.{key}", f"Invalid value: {value!r}: not a valid label value")


def _pod_spec(spec: Obj, path: str) -> None:
    volumes: set[str] = set()
    for i, volume in enumerate(_list(spec, "volumes", f"{path}.volumes")):
        vpath = f"{path}.volumes[{i}]"
        if not isinstance(volume, dict):
            raise invalid(vpath, "Invalid value: must be an object")
        vname = _required_string(volume, "name", f"{vpath}.name")
        # a volume name becomes a directory on the node: only a DNS-1123 label, never a path
        _name(vname, f"{vpath}.name", DNS1123_LABEL, 63, "a DNS-1123 label")
        if vname in volumes:
            raise invalid(f"{vpath}.name", f"Duplicate value: {vname!r}")
        volumes.add(vname)
        for source, field in _SOURCE_NAMES.items():
            if source in volume:
                ref = _required_string(_mapping(volume, source, f"{vpath}.{source}"), field,
                                       f"{vpath}.{source}.{field}")
                _name(ref, f"{vpath}.{source}.{field}", DNS1123_SUBDOMAIN, 253, "a DNS-1123 subdomain")
    names: set[str] = set()
    for key in ("initContainers", "containers"):
        items = _list(spec, key, f"{path}.{key}", required=key == "containers")
        for i, container in enumerate(items):
            _container(container, f"{path}.{key}[{i}]", names, volumes)


def _container(container: Any, path: str, names: set[str], volumes: set[str]) -> None:
    if not isinstance(container, dict):
        raise invalid(path, "Invalid value: must be an object")
    name = _required_string(container, "name", f"{path}.name")
    _name(name, f"{path}.name", DNS1123_LABEL, 63, "a DNS-1123 label")
    if name in names:
        raise invalid(f"{path}.name", f"Duplicate value: {name!r}")
    names.add(name)
    _string(container, "image", f"{path}.image", required=True)
    for j, port in enumerate(_list(container, "ports", f"{path}.ports")):
        ppath = f"{path}.ports[{j}]"
        if not isinstance(port, dict):
            raise invalid(ppath, "Invalid value: must be an object")
        _port(port.get("containerPort"), f"{ppath}.containerPort")
        _port(port.get("hostPort"), f"{ppath}.hostPort", required=False)
        protocol = port.get("protocol")
        if protocol is not None and protocol not in PROTOCOLS:
            raise invalid(f"{ppath}.protocol", f"Unsupported value: {protocol!r}: supported values: "
                                               + ", ".join(f'"{p}"' for p in PROTOCOLS))
    for j, env in enumerate(_list(container, "env", f"{path}.env")):
        if not isinstance(env, dict):
            raise invalid(f"{path}.env[{j}]", "Invalid value: must be an object")
        _string(env, "name", f"{path}.env[{j}].name", required=True)
    for j, mount in enumerate(_list(container, "volumeMounts", f"{path}.volumeMounts")):
        mpath = f"{path}.volumeMounts[{j}]"
        if not isinstance(mount, dict):
            raise invalid(mpath, "Invalid value: must be an object")
        mname = _string(mount, "name", f"{mpath}.name", required=True)
        if mname not in volumes:
            raise invalid(f"{mpath}.name", f"Not found: {mname!r}: no volume of that name in the pod")
        _string(mount, "mountPath", f"{mpath}.mountPath", required=True)
        sub_path = _string(mount, "subPath", f"{mpath}.subPath")
        if sub_path is not None and (sub_path.startswith("/") or ".." in sub_path.split("/")):
            raise invalid(f"{mpath}.subPath", f"Invalid value: {sub_path!r}: must be a relative path "
                                              "without '..'")


def _service_spec(spec: Obj) -> None:
    kind = spec.get("type", "ClusterIP")
    headless = spec.get("clusterIP") == "None"
    ports = _list(spec, "ports", "spec.ports", required=kind != "ExternalName" and not headless)
    names: set[str] = set()
    for i, port in enumerate(ports):
        path = f"spec.ports[{i}]"
        if not isinstance(port, dict):
            raise invalid(path, "Invalid value: must be an object")
        _port(port.get("port"), f"{path}.port")
        name = _string(port, "name", f"{path}.name", required=len(ports) > 1)
        if name is not None:
            if name in names:
                raise invalid(f"{path}.name", f"Duplicate value: {name!r}")
            names.add(name)
        target = port.get("targetPort")
        if isinstance(target, int) and not isinstance(target, bool):
            _port(target, f"{path}.targetPort")
        elif target is not None and (not isinstance(target, str) or not target):
            raise invalid(f"{path}.targetPort", f"Invalid value: {target!r}: a port number or name")
        protocol = port.get("protocol")
        if protocol is not None and protocol not in PROTOCOLS:
            raise invalid(f"{path}.protocol", f"Unsupported value: {protocol!r}")
    selector = _mapping(spec, "selector", "spec.selector")
    labels(selector, "spec.selector")


def _rc_spec(spec: Obj) -> None:
    replicas = spec.get("replicas")
    if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int)
                                 or replicas < 0):
        raise invalid("spec.replicas", f"Invalid value: {replicas!r}: must be a non-negative integer")
    template = _mapping(spec, "template", "spec.template", required=True)
    template_meta = _mapping(template, "metadata", "spec.template.metadata")
    template_labels = _mapping(template_meta, "labels", "spec.template.metadata.labels")
    labels(template_labels, "spec.template.metadata.labels")
    selector = _mapping(spec, "selector", "spec.selector")
    labels(selector, "spec.selector")
    if not selector and not template_labels:
        raise invalid("spec.selector", "Required value: a selector, or labels on the template to "
                                       "default it from")
    if any(template_labels.get(k) != v for k, v in selector.items()):
        raise invalid("spec.template.metadata.labels",
                      f"Invalid value: {template_labels!r}: `selector` does not match template `labels`")
    _pod_spec(_mapping(template, "spec", "spec.template.spec", required=True), "spec.template.spec")
