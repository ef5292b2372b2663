"""PodSecurity admission of the embedded cluster: the pod of every pod, RC and Job write must
pass the cluster's Pod Security Standards level before it is stored.

``validation.prepare`` calls ``admit`` after the object is valid, on creates, updates, patches
and dry runs, and for the pods the RC and Job controllers make from templates (they create
through the same store path), so no way of making a pod goes around it. Templates are checked
when the RC or Job is written, so ``kubectl apply`` of a bad RC fails at once instead of leaving
a controller failing to create pods. An update that leaves the pod part unchanged is not
re-judged (metadata, status and scale changes of objects stored before the check existed).

The level is the cluster's, ``ClusterSpec.pod_security`` (baseline unless the operator who
builds the cluster says otherwise). There is no per-namespace or per-user exemption on purpose:
nothing Bayport creates in an embedded cluster needs the host (its controllers and node agents
run in-process, not as pods; hostPath/hostNetwork appear only in the heat driver's kubeadm
templates, which configure real clusters), and every bay user currently holds the same admin
token, so a namespace label ``pod-security.kubernetes.io/enforce=privileged`` or an exempt
identity would be granted by whoever asks. The rules themselves are ``bayport.pod_security``.
"""

from __future__ import annotations

from typing import Any

from bayport.cluster.errors import forbidden, qualified
from bayport.pod_security import BASELINE, check_pod, forbidden_message

Obj = dict[str, Any]
_TEMPLATED = ("replicationcontrollers", "jobs")


def _pod_part(plural: str, obj: Obj) -> tuple[Any, Any, str] | None:
    """(metadata, spec, path of the spec) of the pod ``obj`` is or makes; None for other kinds."""
    if plural == "pods":
        return obj.get("metadata") or {}, obj.get("spec") or {}, "spec"
    if plural in _TEMPLATED:
        template = (obj.get("spec") or {}).get("template") or {}
        if isinstance(template, dict):
            return template.get("metadata") or {}, template.get("spec") or {}, "spec.template.spec"
    return None


def admit(plural: str, obj: Obj, old: Obj | None, level: str = BASELINE) -> None:
    """403 Forbidden, as the kube-apiserver words it, when the pod breaks ``level``."""
    part = _pod_part(plural, obj)
    if part is None:
        return
    meta, spec, path = part
    if old is not None:
        before = _pod_part(plural, old)
        unchanged = (meta.get("annotations"), spec)
        if before is not None and (before[0].get("annotations"), before[1]) == unchanged:
            return
    violations = check_pod(meta, spec, level=level, path=path)
    if violations:
        name = str((obj.get("metadata") or {}).get("name") or "")
        raise forbidden(f'{qualified(plural)} "{name}" is forbidden: {forbidden_message(violations, level)}',
                        plural, name)
