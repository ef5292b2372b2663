"""A Kubernetes container spec as ``podman create`` arguments: the pure translation part of the
podman runtime (``runtime.podman`` adds names, labels, the pod and its network namespace).

Kubernetes semantics kept: ``command`` replaces the image's ENTRYPOINT and drops its CMD,
``args`` alone replace CMD; ``$(VAR)`` references in command, args and env values expand from the
container's environment (``$$`` escapes); env ``fieldRef``s resolve from the pod; resources.limits
become cgroup limits (``--cpus``, ``--memory``) and requests.cpu becomes CPU shares, as kubelet
maps them; volume mounts bind the host directories the runtime resolved for the pod's volumes.
Anything the embedded cluster cannot honour (a ConfigMap or Secret reference, a privileged
container) is a ``CreateContainerConfigError`` naming the field, never silently dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path, PurePosixPath
from typing import Any

from bayport.cluster.paths import PathEscape, confined
from bayport.cluster.runtime.base import ContainerRuntimeError

Obj = Mapping[str, Any]
CONFIG_ERROR = "CreateContainerConfigError"

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
            "P": Decimal("1e15"), "E": Decimal("1e18")}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")
_FIELD_PATH = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
# kubelet: shares = milliCPU * 1024 / 1000, at least 2
_MIN_SHARES = 2


def config_error(message: str) -> ContainerRuntimeError:
    return ContainerRuntimeError(CONFIG_ERROR, message)


def parse_quantity(value: object, what: str) -> Decimal:
    """A Kubernetes resource quantity ("500m", "128Mi", "1.5", "1e3") as a number."""
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        raise config_error(f"{what}: {value!r} is not a resource quantity")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        raise config_error(f"{what}: {value!r} is not a resource quantity") from None
    suffix = match.group(2) or ""
    return number * (_BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix])


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined references replaced, ``$$`` → ``$``, others kept."""
    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _VAR_REF.sub(one, text)


def _field_value(pod: Obj, path: str, pod_ip: str | None, node_name: str) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace") or "default",
        "metadata.uid": meta.get("uid"), "spec.nodeName": node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.podIP": pod_ip or "", "status.podIPs": pod_ip or "",
        "status.hostIP": "", "status.hostIPs": "",
    }
    if path in simple:
        return str(simple[path] or "")
    match = _FIELD_PATH.match(path)
    if match is not None:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise config_error(f"env fieldRef {path!r} is not supported")


def container_env(container: Obj, pod: Obj, pod_ip: str | None, node_name: str) -> dict[str, str]:
    """The container's environment in definition order, references resolved and expanded."""
    name = container.get("name")
    for source in container.get("envFrom") or ():
        kind = "configMapRef" if "configMapRef" in source else "secretRef"
        ref = source.get(kind) or {}
        if not ref.get("optional"):
            raise config_error(f"container {name}: envFrom {kind} {ref.get('name')!r}: the embedded "
                               "cluster has no ConfigMaps or Secrets")
    env: dict[str, str] = {}
    for item in container.get("env") or ():
        key = str(item.get("name", ""))
        if "value" in item or "valueFrom" not in item:
            env[key] = expand(str(item.get("value") or ""), env)
            continue
        source = item.get("valueFrom") or {}
        if "fieldRef" in source:
            env[key] = _field_value(pod, str(source["fieldRef"].get("fieldPath", "")), pod_ip, node_name)
        elif "resourceFieldRef" in source:
            env[key] = _resource_value(container, source["resourceFieldRef"])
        else:
            kind = next(iter(source), "valueFrom")
            ref = source.get(kind) or {}
            if not ref.get("optional"):
                raise config_error(f"container {name}: env {key} from {kind} {ref.get('name')!r}: the "
                                   "embedded cluster has no ConfigMaps or Secrets")
    return env


def _resource_value(container: Obj, ref: Obj) -> str:
    resource = str(ref.get("resource", ""))
    group, _, kind = resource.partition(".")
    value = ((container.get("resources") or {}).get(group) or {}).get(kind)
    if value is None:
        return "0"
    number = parse_quantity(value, resource)
    divisor = parse_quantity(ref.get("divisor") or "1", f"{resource} divisor")
    result = number / divisor if divisor else number
    return str(int(result.to_integral_value(rounding="ROUND_CEILING")))


def resource_args(container: Obj) -> list[str]:
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    name = container.get("name")
    args: list[str] = []
    if "cpu" in limits:
        cpus = parse_quantity(limits["cpu"], f"container {name} resources.limits.cpu")
        if cpus > 0:
            args += ["--cpus", f"{cpus.normalize():f}"]
    if "memory" in limits:
        memory = int(parse_quantity(limits["memory"], f"container {name} resources.limits.memory"))
        if memory > 0:
            args += ["--memory", str(memory)]
    cpu_request = requests.get("cpu", limits.get("cpu"))
    if cpu_request is not None:
        milli = parse_quantity(cpu_request, f"container {name} resources.requests.cpu") * 1000
        args += ["--cpu-shares", str(max(_MIN_SHARES, int(milli * 1024 / 1000)))]
    return args


def mount_args(container: Obj, volumes: Mapping[str, Path]) -> list[str]:
    """``--mount`` per volumeMount; the host side is the pod volume's directory (+ subPath)."""
    args: list[str] = []
    for mount in container.get("volumeMounts") or ():
        volume = str(mount.get("name", ""))
        if volume not in volumes:
            raise config_error(f"container {container.get('name')}: volumeMount {volume!r} names no "
                               "volume of the pod")
        source = volumes[volume]
        sub_path = str(mount.get("subPath") or "")
        if sub_path:
            relative = PurePosixPath(sub_path)
            if relative.is_absolute() or ".." in relative.parts:
                raise config_error(f"volumeMount {volume}: subPath {sub_path!r} must be a relative path "
                                   "inside the volume")
            try:  # resolved: a symlink the pod's containers planted in the volume must not lead out
                source = confined(source, *relative.parts)
            except PathEscape as exc:
                raise config_error(f"volumeMount {volume}: subPath {sub_path!r}: {exc}") from exc
            source.mkdir(parents=True, exist_ok=True)
        target = str(mount.get("mountPath", ""))
        if not target.startswith("/"):
            raise config_error(f"volumeMount {volume}: mountPath {target!r} must be absolute")
        for path in (str(source), target):
            if "," in path or "=" in path:
                raise config_error(f"volumeMount {volume}: path {path!r} has a ',' or '='")
        option = ",ro=true" if mount.get("readOnly") else ""
        args += ["--mount", f"type=bind,source={source},destination={target}{option}"]
    return args


def security_args(container: Obj, pod: Obj) -> list[str]:
    pod_ctx = (pod.get("spec") or {}).get("securityContext") or {}
    ctx = {**pod_ctx, **(container.get("securityContext") or {})}
    if ctx.get("privileged"):
        raise config_error(f"container {container.get('name')}: privileged containers are not allowed on "
                           "embedded podman nodes (they would own the Bayport host)")
    user, group = ctx.get("runAsUser"), ctx.get("runAsGroup")
    if user is None:
        return []
    return ["--user", f"{int(user)}:{int(group)}" if group is not None else str(int(user))]


def command_args(container: Obj, env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(create options, positional arguments after the image) for command/args."""
    command = [expand(str(c), env) for c in container.get("command") or ()]
    args = [expand(str(a), env) for a in container.get("args") or ()]
    options = ["--entrypoint", json.dumps(command)] if command else []
    return options, args


def create_args(container: Obj, *, pod: Obj, pod_ip: str | None, node_name: str,
                volumes: Mapping[str, Path]) -> tuple[list[str], list[str]]:
    """(options, positional command) of ``podman create`` for one Kubernetes container."""
    env = container_env(container, pod, pod_ip, node_name)
    options: list[str] = []
    for key, value in env.items():
        options += ["--env", f"{key}={value}"]
    working_dir = container.get("workingDir")
    if working_dir:
        options += ["--workdir", str(working_dir)]
    options += resource_args(container)
    options += mount_args(container, volumes)
    options += security_args(container, pod)
    entrypoint, positional = command_args(container, env)
    return options + entrypoint, positional
