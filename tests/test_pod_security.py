"""The Pod Security Standards checks on their own: what baseline refuses, the words of each
refusal (those of the kube-apiserver's PodSecurity admission), and what it lets through."""

from __future__ import annotations

from typing import Any

import pytest

from bayport.pod_security import check_pod, forbidden_message

Obj = dict[str, Any]


def _spec(**fields: Any) -> Obj:
    return {"containers": [{"name": "app", "image": "busybox"}], **fields}


def _ctx(**ctx: Any) -> Obj:
    return _spec(containers=[{"name": "app", "image": "busybox", "securityContext": ctx}])


def test_the_default_pod_passes() -> None:
    assert check_pod({}, _spec()) == []
    allowed = _ctx(capabilities={"add": ["NET_BIND_SERVICE", "CHOWN"], "drop": ["ALL"]},
                   procMount="Default", seccompProfile={"type": "RuntimeDefault"},
                   seLinuxOptions={"type": "container_t"}, privileged=False)
    assert check_pod({}, {**allowed, "hostNetwork": False,
                          "securityContext": {"sysctls": [{"name": "net.ipv4.ping_group_range",
                                                           "value": "0 1"}]},
                          "volumes": [{"name": "v", "emptyDir": {}}]}) == []


@pytest.mark.parametrize(("spec", "text", "field"), [
    (_spec(hostNetwork=True), "host namespaces (hostNetwork=true)", "spec.hostNetwork"),
    (_spec(hostNetwork=True, hostPID=True, hostIPC=True),
     "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)", "spec.hostNetwork"),
    (_ctx(privileged=True), 'privileged (container "app" must not set securityContext.privileged=true)',
     "spec.containers[0].securityContext.privileged"),
    (_ctx(capabilities={"add": ["SYS_ADMIN", "CHOWN"]}),
     'non-default capabilities (container "app" must not include "SYS_ADMIN" in '
     "securityContext.capabilities.add)", "spec.containers[0].securityContext.capabilities.add"),
    (_spec(volumes=[{"name": "root", "hostPath": {"path": "/"}}]), 'hostPath volumes (volume "root")',
     "spec.volumes[0].hostPath"),
    (_spec(containers=[{"name": "app", "image": "i", "ports": [{"containerPort": 80, "hostPort": 8080}]}]),
     'hostPort (container "app" uses hostPort 8080)', "spec.containers[0].ports[0].hostPort"),
    (_ctx(procMount="Unmasked"),
     'procMount (container "app" must not set securityContext.procMount to "Unmasked")',
     "spec.containers[0].securityContext.procMount"),
    (_spec(securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}),
     "forbidden sysctls (kernel.msgmax)", "spec.securityContext.sysctls[0].name"),
    (_spec(securityContext={"seLinuxOptions": {"type": "spc_t", "user": "root"}}),
     'seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not be set)',
     "spec.securityContext.seLinuxOptions"),
    (_ctx(seccompProfile={"type": "Unconfined"}),
     'seccompProfile (container "app" must not set securityContext.seccompProfile.type to "Unconfined")',
     "spec.containers[0].securityContext.seccompProfile.type"),
    (_ctx(appArmorProfile={"type": "Unconfined"}),
     'forbidden AppArmor profile (container "app" must not set securityContext.appArmorProfile.type to '
     '"Unconfined")', "spec.containers[0].securityContext.appArmorProfile.type"),
    (_spec(securityContext={"windowsOptions": {"hostProcess": True}}),
     "hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)",
     "spec.securityContext.windowsOptions.hostProcess"),
])
def test_baseline_refuses_each_control(spec: Obj, text: str, field: str) -> None:
    (violation,) = check_pod({}, spec)
    assert str(violation) == text
    assert violation.fields[0] == field


def test_init_and_ephemeral_containers_count_and_several_are_listed_together() -> None:
    spec = {"initContainers": [{"name": "init", "image": "i", "securityContext": {"privileged": True}}],
            "containers": [{"name": "app", "image": "i", "securityContext": {"privileged": True}}],
            "ephemeralContainers": [{"name": "dbg", "image": "i", "securityContext": {"privileged": True}}]}
    (violation,) = check_pod({}, spec, path="spec.template.spec")
    assert str(violation) == ('privileged (containers "init", "app", "dbg" must not set '
                              "securityContext.privileged=true)")
    assert violation.fields[0] == "spec.template.spec.initContainers[0].securityContext.privileged"


def test_apparmor_annotation_and_message_order() -> None:
    meta = {"annotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}}
    found = check_pod(meta, _spec(hostNetwork=True, volumes=[{"name": "h", "hostPath": {"path": "/"}}]))
    assert forbidden_message(found) == (
        'violates PodSecurity "baseline:latest": forbidden AppArmor profile '
        '(container.apparmor.security.beta.kubernetes.io/app="unconfined"), host namespaces '
        '(hostNetwork=true), hostPath volumes (volume "h")')


def test_privileged_level_allows_everything() -> None:
    assert check_pod({}, _spec(hostNetwork=True), level="privileged") == []
