"""The Kubernetes Pod Security Standards, as checks over a pod's metadata and spec.

One rule set for every layer that admits a pod: the embedded cluster's admission
(``cluster.store`` on every pod, RC and Job write, including the pods controllers make from
templates), Bayport's manifest validation (``kube.validate``) and the tenant job template
validator (``jobs.template``). It imports nothing from Bayport, so the embedded cluster, which
depends on no control-plane code, and the control plane can both use it.

The checks follow the published "baseline" profile (latest version) and the words of the
kube-apiserver's PodSecurity admission, so a refusal reads as a real cluster's would:
``violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), ...`` — each
violation a reason and a detail, in the order of the upstream check identifiers. Each
violation also names the offending fields, for callers that answer with a field path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Obj = Mapping[str, Any]
PRIVILEGED, BASELINE = "privileged", "baseline"
LEVELS = (PRIVILEGED, BASELINE)

# Capabilities a container may add under baseline: the container runtimes' default set.
BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
# Sysctls namespaced to the pod and isolated from the node and other pods (baseline, latest).
SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes"})
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
SECCOMP_ALLOWED = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ALLOWED = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"
_CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True)
class Violation:
    """One failed control: ``reason (detail)`` and the fields that made it fail."""

    reason: str
    detail: str
    fields: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.reason} ({self.detail})"


def forbidden_message(violations: list[Violation], level: str = BASELINE) -> str:
    """What PodSecurity admission says after ``<kind> "<name>" is forbidden: ``."""
    return f'violates PodSecurity "{level}:latest": ' + ", ".join(str(v) for v in violations)


@dataclass(frozen=True)
class _Container:
    name: str
    path: str                      # spec.containers[0]
    body: Obj

    @property
    def context(self) -> Obj:
        return _obj(self.body.get("securityContext"))


def _obj(value: Any) -> Obj:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _quote(items: list[str]) -> str:
    return ", ".join(f'"{item}"' for item in items)


def _plural(word: str, count: int) -> str:
    return word if count == 1 else f"{word}s"


def _who(items: list[str], pod: bool = False) -> str:
    """``pod``, ``container "a"``, ``containers "a", "b"``, ``pod and container "a"``."""
    parts = ["pod"] if pod else []
    if items:
        parts.append(f"{_plural('container', len(items))} {_quote(items)}")
    return " and ".join(parts)


def _containers(spec: Obj, path: str) -> Iterator[_Container]:
    for field in _CONTAINER_FIELDS:
        for i, body in enumerate(_list(spec.get(field))):
            if isinstance(body, Mapping):
                yield _Container(str(body.get("name", "")), f"{path}.{field}[{i}]", body)


# --- the controls (upstream check identifiers in order) -----------------------------------------


def _app_armor(meta: Obj, spec: Obj, path: str) -> Violation | None:
    details: list[str] = []
    fields: list[str] = []
    pod_ctx = _obj(spec.get("securityContext"))
    pod_bad = _obj(pod_ctx.get("appArmorProfile")).get("type") not in (None, *APPARMOR_ALLOWED)
    bad = [c for c in _containers(spec, path)
           if _obj(c.context.get("appArmorProfile")).get("type") not in (None, *APPARMOR_ALLOWED)]
    if pod_bad or bad:
        details.append(f"{_who([c.name for c in bad], pod_bad)} must not set "
                       'securityContext.appArmorProfile.type to "Unconfined"')
        fields += [f"{path}.securityContext.appArmorProfile.type"] if pod_bad else []
        fields += [f"{c.path}.securityContext.appArmorProfile.type" for c in bad]
    for key, value in sorted(_obj(meta.get("annotations")).items()):
        if key.startswith(APPARMOR_ANNOTATION) and not (
                value == "runtime/default" or str(value).startswith("localhost/")):
            details.append(f'{key}="{value}"')
            fields.append(f"metadata.annotations[{key}]")
    if not details:
        return None
    return Violation(f"forbidden AppArmor {_plural('profile', len(details))}", ", ".join(details),
                     tuple(fields))


def _capabilities(meta: Obj, spec: Obj, path: str) -> Violation | None:
    names: list[str] = []
    added: set[str] = set()
    fields: list[str] = []
    for c in _containers(spec, path):
        extra = [str(cap) for cap in _list(_obj(c.context.get("capabilities")).get("add"))
                 if cap not in BASELINE_CAPABILITIES]
        if extra:
            names.append(c.name)
            added.update(extra)
            fields.append(f"{c.path}.securityContext.capabilities.add")
    if not names:
        return None
    return Violation("non-default capabilities", f"{_who(names)} must not include {_quote(sorted(added))} "
                     "in securityContext.capabilities.add", tuple(fields))


def _host_namespaces(meta: Obj, spec: Obj, path: str) -> Violation | None:
    flags = [flag for flag in ("hostNetwork", "hostPID", "hostIPC") if spec.get(flag) is True]
    if not flags:
        return None
    return Violation("host namespaces", ", ".join(f"{flag}=true" for flag in flags),
                     tuple(f"{path}.{flag}" for flag in flags))


def _host_path_volumes(meta: Obj, spec: Obj, path: str) -> Violation | None:
    found = [(i, str(v.get("name", ""))) for i, v in enumerate(_list(spec.get("volumes")))
             if isinstance(v, Mapping) and v.get("hostPath") is not None]
    if not found:
        return None
    return Violation("hostPath volumes", f"{_plural('volume', len(found))} {_quote([n for _, n in found])}",
                     tuple(f"{path}.volumes[{i}].hostPath" for i, _ in found))


def _host_ports(meta: Obj, spec: Obj, path: str) -> Violation | None:
    names: list[str] = []
    ports: list[str] = []
    fields: list[str] = []
    for c in _containers(spec, path):
        used = [(j, p.get("hostPort")) for j, p in enumerate(_list(c.body.get("ports")))
                if isinstance(p, Mapping) and p.get("hostPort") not in (None, 0)]
        if used:
            names.append(c.name)
            ports += [str(port) for _, port in used if str(port) not in ports]
            fields += [f"{c.path}.ports[{j}].hostPort" for j, _ in used]
    if not names:
        return None
    verb = "uses" if len(names) == 1 else "use"
    return Violation("hostPort", f"{_who(names)} {verb} {_plural('hostPort', len(ports))} {', '.join(ports)}",
                     tuple(fields))


def _privileged(meta: Obj, spec: Obj, path: str) -> Violation | None:
    bad = [c for c in _containers(spec, path) if c.context.get("privileged") is True]
    if not bad:
        return None
    return Violation("privileged",
                     f"{_who([c.name for c in bad])} must not set securityContext.privileged=true",
                     tuple(f"{c.path}.securityContext.privileged" for c in bad))


def _proc_mount(meta: Obj, spec: Obj, path: str) -> Violation | None:
    bad = [c for c in _containers(spec, path) if c.context.get("procMount") not in (None, "Default")]
    if not bad:
        return None
    kinds = sorted({str(c.context.get("procMount")) for c in bad})
    return Violation("procMount", f"{_who([c.name for c in bad])} must not set securityContext.procMount to "
                     f"{_quote(kinds)}", tuple(f"{c.path}.securityContext.procMount" for c in bad))


def _se_linux(meta: Obj, spec: Obj, path: str) -> Violation | None:
    types: set[str] = set()
    user = role = False

    def bad(ctx: Obj) -> bool:
        nonlocal user, role
        options = _obj(ctx.get("seLinuxOptions"))
        kind = options.get("type")
        wrong = kind is not None and kind not in SELINUX_TYPES
        if wrong:
            types.add(str(kind))
        user = user or bool(options.get("user"))
        role = role or bool(options.get("role"))
        return wrong or bool(options.get("user")) or bool(options.get("role"))

    pod_bad = bad(_obj(spec.get("securityContext")))
    containers = [c for c in _containers(spec, path) if bad(c.context)]
    if not pod_bad and not containers:
        return None
    data = [f"{_plural('type', len(types))} {_quote(sorted(types))}"] if types else []
    data += ["user may not be set"] if user else []
    data += ["role may not be set"] if role else []
    fields = [f"{path}.securityContext.seLinuxOptions"] if pod_bad else []
    fields += [f"{c.path}.securityContext.seLinuxOptions" for c in containers]
    return Violation("seLinuxOptions", f"{_who([c.name for c in containers], pod_bad)} set forbidden "
                     f"securityContext.seLinuxOptions: {'; '.join(data)}", tuple(fields))


def _seccomp(meta: Obj, spec: Obj, path: str) -> Violation | None:
    def unconfined(ctx: Obj) -> bool:
        return _obj(ctx.get("seccompProfile")).get("type") not in (None, *SECCOMP_ALLOWED)

    details: list[str] = []
    fields: list[str] = []
    pod_bad = unconfined(_obj(spec.get("securityContext")))
    bad = [c for c in _containers(spec, path) if unconfined(c.context)]
    if pod_bad or bad:
        kinds = {str(_obj(ctx.get("seccompProfile")).get("type")) for ctx in
                 [*([_obj(spec.get("securityContext"))] if pod_bad else []), *(c.context for c in bad)]}
        details.append(f"{_who([c.name for c in bad], pod_bad)} must not set "
                       f"securityContext.seccompProfile.type to {_quote(sorted(kinds))}")
        fields += [f"{path}.securityContext.seccompProfile.type"] if pod_bad else []
        fields += [f"{c.path}.securityContext.seccompProfile.type" for c in bad]
    for key, value in sorted(_obj(meta.get("annotations")).items()):
        if (key == SECCOMP_POD_ANNOTATION or key.startswith(SECCOMP_ANNOTATION)) and value == "unconfined":
            details.append(f'{key}="{value}"')
            fields.append(f"metadata.annotations[{key}]")
    if not details:
        return None
    return Violation("seccompProfile", ", ".join(details), tuple(fields))


def _sysctls(meta: Obj, spec: Obj, path: str) -> Violation | None:
    found = [(i, str(_obj(s).get("name", ""))) for i, s in
             enumerate(_list(_obj(spec.get("securityContext")).get("sysctls")))
             if _obj(s).get("name") not in SAFE_SYSCTLS]
    if not found:
        return None
    return Violation("forbidden sysctls", ", ".join(name for _, name in found),
                     tuple(f"{path}.securityContext.sysctls[{i}].name" for i, _ in found))


def _host_process(meta: Obj, spec: Obj, path: str) -> Violation | None:
    def host(ctx: Obj) -> bool:
        return _obj(ctx.get("windowsOptions")).get("hostProcess") is True

    pod_bad = host(_obj(spec.get("securityContext")))
    bad = [c for c in _containers(spec, path) if host(c.context)]
    if not pod_bad and not bad:
        return None
    fields = [f"{path}.securityContext.windowsOptions.hostProcess"] if pod_bad else []
    fields += [f"{c.path}.securityContext.windowsOptions.hostProcess" for c in bad]
    return Violation("hostProcess", f"{_who([c.name for c in bad], pod_bad)} must not set "
                     "securityContext.windowsOptions.hostProcess=true", tuple(fields))


_BASELINE: tuple[Callable[[Obj, Obj, str], Violation | None], ...] = (
    _app_armor, _capabilities, _host_namespaces, _host_path_volumes, _host_ports, _privileged, _proc_mount,
    _se_linux, _seccomp, _sysctls, _host_process)


def check_pod(meta: Obj, spec: Obj, *, level: str = BASELINE, path: str = "spec") -> list[Violation]:
    """Every control the pod (``meta``, ``spec``; ``path`` is where the spec sits) fails at ``level``.

    An unknown level is checked as baseline: a typo never opens the host.
    """
    if level == PRIVILEGED:
        return []
    meta, spec = _obj(meta), _obj(spec)
    return [v for check in _BASELINE if (v := check(meta, spec, path)) is not None]
