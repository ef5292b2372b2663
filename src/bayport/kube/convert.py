"""Old Kubernetes API versions → ``v1``, so the seed's manifests run on today's clusters.

Magnum's era wrote ``apiVersion: v1beta3`` (already v1's shape, with a few renamed fields:
``host``, ``portalIP``, ``publicIPs``, ``createExternalLoadBalancer``, top-level container
``privileged``/``capabilities``) and, before that, ``v1beta1``/``v1beta2`` (``id``,
``desiredState.manifest``, ``replicaSelector``, ``podTemplate``, volume ``source``).
``to_v1`` returns a new dict in v1 wire form and never mutates its input; ``validate`` then
checks the result as it would check any v1 manifest.
"""

from __future__ import annotations

import copy
from typing import Any

from bayport import errors

V1 = "v1"
LEGACY_FLAT = ("v1beta1", "v1beta2")
SUPPORTED = (V1, "v1beta3", *LEGACY_FLAT)
Obj = dict[str, Any]


def to_v1(doc: Obj) -> Obj:
    """``doc`` in ``v1`` form; unknown apiVersions are a 400 naming ``apiVersion``."""
    version = doc.get("apiVersion")
    if version is None:
        raise errors.InvalidManifest("apiVersion: Required value", field="apiVersion")
    if version == V1:
        out = copy.deepcopy(doc)
    elif version == "v1beta3":
        out = _from_v1beta3(copy.deepcopy(doc))
    elif version in LEGACY_FLAT:
        out = _from_v1beta1(copy.deepcopy(doc))
    else:
        raise errors.InvalidManifest(
            f"apiVersion: Unsupported value: {version!r}: supported values: {', '.join(SUPPORTED)}",
            field="apiVersion")
    _quantities_as_strings(out)
    return out


def _quantities_as_strings(doc: Obj) -> None:
    """``cpu: 1`` is a valid quantity to kubectl; on the wire a Quantity is a string."""
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return
    template = spec.get("template")
    pod_spec = template.get("spec") if isinstance(template, dict) else spec
    if not isinstance(pod_spec, dict):
        return
    for key in ("containers", "initContainers"):
        containers = pod_spec.get(key)
        for container in containers if isinstance(containers, list) else []:
            resources = container.get("resources") if isinstance(container, dict) else None
            for part in ("limits", "requests"):
                values = resources.get(part) if isinstance(resources, dict) else None
                if isinstance(values, dict):
                    for name, value in values.items():
                        if isinstance(value, int | float) and not isinstance(value, bool):
                            values[name] = str(value)


# --- v1beta3 -------------------------------------------------------------------------------

def _from_v1beta3(doc: Obj) -> Obj:
    doc["apiVersion"] = V1
    kind = doc.get("kind")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return doc
    if kind == "Pod":
        _pod_spec_v1beta3(spec)
    elif kind == "ReplicationController":
        template = spec.get("template")
        if isinstance(template, dict) and isinstance(template.get("spec"), dict):
            _pod_spec_v1beta3(template["spec"])
    elif kind == "Service":
        _rename(spec, "portalIP", "clusterIP")
        _rename(spec, "publicIPs", "externalIPs")
        if spec.pop("createExternalLoadBalancer", False) is True:
            spec.setdefault("type", "LoadBalancer")
    return doc


def _pod_spec_v1beta3(spec: Obj) -> None:
    _rename(spec, "host", "nodeName")
    _rename(spec, "serviceAccount", "serviceAccountName")
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                _container_v1beta3(container)


def _container_v1beta3(container: Obj) -> None:
    security: Obj = {}
    if "privileged" in container:
        security["privileged"] = container.pop("privileged")
    if "capabilities" in container:
        security["capabilities"] = container.pop("capabilities")
    if security:
        existing = container.get("securityContext")
        container["securityContext"] = {**security, **(existing if isinstance(existing, dict) else {})}


def _rename(obj: Obj, old: str, new: str) -> None:
    if old in obj:
        value = obj.pop(old)
        obj.setdefault(new, value)


# --- v1beta1 / v1beta2 -----------------------------------------------------------------------

def _metadata_v1beta1(doc: Obj, labels: Any = None) -> Obj:
    meta: Obj = {}
    name = doc.get("id") or doc.get("name")
    if name is not None:
        meta["name"] = name
    if doc.get("namespace") is not None:
        meta["namespace"] = doc["namespace"]
    labels = doc.get("labels") if labels is None else labels
    if labels:
        meta["labels"] = labels
    if doc.get("annotations"):
        meta["annotations"] = doc["annotations"]
    return meta


def _from_v1beta1(doc: Obj) -> Obj:
    kind = doc.get("kind")
    out: Obj = {"apiVersion": V1, "kind": kind, "metadata": _metadata_v1beta1(doc)}
    if kind == "Pod":
        out["spec"] = _pod_spec_v1beta1(doc.get("desiredState"))
    elif kind == "ReplicationController":
        out["spec"] = _rc_spec_v1beta1(doc.get("desiredState"))
    elif kind == "Service":
        out["spec"] = _service_spec_v1beta1(doc)
    else:
        out.update({k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "id")})
    return out


def _pod_spec_v1beta1(state: Any) -> Obj:
    manifest = state.get("manifest") if isinstance(state, dict) else None
    if not isinstance(manifest, dict):
        return {}
    spec: Obj = {}
    containers = manifest.get("containers")
    if isinstance(containers, list):
        spec["containers"] = [_container_v1beta1(c) if isinstance(c, dict) else c for c in containers]
    else:
        spec["containers"] = containers
    volumes = manifest.get("volumes")
    if isinstance(volumes, list):
        spec["volumes"] = [_volume_v1beta1(v) if isinstance(v, dict) else v for v in volumes]
    restart = manifest.get("restartPolicy")
    if isinstance(restart, dict) and restart:
        # v1beta1 spelled it {"always": {}} / {"onFailure": {}} / {"never": {}}.
        spec["restartPolicy"] = next(iter(restart))[:1].upper() + next(iter(restart))[1:]
    elif isinstance(restart, str):
        spec["restartPolicy"] = restart
    if isinstance(state, dict) and state.get("host"):
        spec["nodeName"] = state["host"]
    return spec


def _container_v1beta1(container: Obj) -> Obj:
    out = {k: v for k, v in container.items() if k not in ("cpu", "memory", "privileged")}
    limits: Obj = {}
    if isinstance(container.get("cpu"), int) and container["cpu"] > 0:
        limits["cpu"] = f"{container['cpu']}m"
    if isinstance(container.get("memory"), int) and container["memory"] > 0:
        limits["memory"] = str(container["memory"])
    if limits:
        out["resources"] = {"limits": limits}
    if "privileged" in container:
        out["securityContext"] = {"privileged": container["privileged"]}
    return out


def _volume_v1beta1(volume: Obj) -> Obj:
    out: Obj = {"name": volume.get("name")}
    source = volume.get("source")
    if isinstance(source, dict):
        for key, value in source.items():
            if key in ("hostDir", "hostPath"):
                out["hostPath"] = value
            elif key == "emptyDir":
                out["emptyDir"] = value or {}
            else:
                out[key] = value
    elif source is None:
        out["emptyDir"] = {}
    return out


def _rc_spec_v1beta1(state: Any) -> Obj:
    if not isinstance(state, dict):
        return {}
    spec: Obj = {}
    if "replicas" in state:
        spec["replicas"] = state["replicas"]
    if "replicaSelector" in state:
        spec["selector"] = state["replicaSelector"]
    template = state.get("podTemplate")
    if isinstance(template, dict):
        meta: Obj = {}
        if template.get("labels"):
            meta["labels"] = template["labels"]
        spec["template"] = {"metadata": meta, "spec": _pod_spec_v1beta1(template.get("desiredState"))}
    return spec


def _service_spec_v1beta1(doc: Obj) -> Obj:
    spec: Obj = {}
    if "selector" in doc:
        spec["selector"] = doc["selector"]
    ports = doc.get("ports")
    if isinstance(ports, list) and ports:
        spec["ports"] = [_service_port_v1beta1(p) if isinstance(p, dict) else p for p in ports]
    elif "port" in doc:
        spec["ports"] = [_service_port_v1beta1(doc)]
    for old, new in (("portalIP", "clusterIP"), ("publicIPs", "externalIPs"),
                     ("sessionAffinity", "sessionAffinity")):
        if doc.get(old) is not None:
            spec[new] = doc[old]
    if doc.get("createExternalLoadBalancer") is True:
        spec["type"] = "LoadBalancer"
    return spec


def _service_port_v1beta1(port: Obj) -> Obj:
    out: Obj = {"port": port.get("port")}
    if port.get("name"):
        out["name"] = port["name"]
    if port.get("protocol"):
        out["protocol"] = port["protocol"]
    if port.get("containerPort") not in (None, 0, ""):
        out["targetPort"] = port["containerPort"]
    return out
