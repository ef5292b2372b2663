"""Pod admission over HTTP: names that would become host paths are 422 Invalid naming the field,
and pods (and the pod templates of RCs and Jobs) that break the baseline Pod Security Standard
are 403 Forbidden in the words of the kube-apiserver's PodSecurity admission."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.cluster.apiserver_helpers import BareApi, bare_api

PODS = "/api/v1/namespaces/default/pods"
RCS = "/api/v1/namespaces/default/replicationcontrollers"
JOBS = "/apis/batch/v1/namespaces/default/jobs"
Obj = dict[str, Any]


@pytest.fixture
async def api() -> AsyncIterator[BareApi]:
    async with bare_api() as served:
        yield served


def pod(name: str, **spec: Any) -> Obj:
    containers = spec.pop("containers", [{"name": "c", "image": "busybox"}])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": containers, **spec}}


def attack(volume: Obj) -> Obj:
    """The container escape of issue 10: a volume whose name is a path."""
    return pod("escape", volumes=[volume],
               containers=[{"name": "c", "image": "busybox",
                            "volumeMounts": [{"name": volume["name"], "mountPath": "/host"}]}])


@pytest.mark.parametrize("volume", [
    {"name": "/", "emptyDir": {}},
    {"name": "../../../etc", "emptyDir": {}},
    {"name": "/etc", "emptyDir": {"medium": "Memory"}},
    {"name": "UPPER", "emptyDir": {}},
    {"name": "a" * 64, "emptyDir": {}},
])
async def test_volume_names_that_are_not_dns_labels_are_invalid(api: BareApi, volume: Obj) -> None:
    r = await api.client.post(PODS, json=attack(volume))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["reason"] == "Invalid"
    fields = {c["field"] for c in body["details"]["causes"]}
    assert "spec.volumes[0].name" in fields
    assert not api.store.exists("pods", "default", "escape")


@pytest.mark.parametrize(("spec", "field"), [
    ({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "../../../../etc"}}]},
     "spec.volumes[0].persistentVolumeClaim.claimName"),
    ({"volumes": [{"name": "data", "configMap": {"name": "../x"}}]}, "spec.volumes[0].configMap.name"),
    ({"volumes": [{"name": "data", "secret": {"secretName": "/etc"}}]}, "spec.volumes[0].secret.secretName"),
    ({"volumes": [{"name": "data", "emptyDir": {}}, {"name": "data", "emptyDir": {}}]},
     "spec.volumes[1].name"),
    ({"containers": [{"name": "c", "image": "i", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}]},
     "spec.containers[0].volumeMounts[0].name"),
    ({"volumes": [{"name": "data", "emptyDir": {}}],
      "containers": [{"name": "c", "image": "i",
                      "volumeMounts": [{"name": "data", "mountPath": "/x", "subPath": "../../etc"}]}]},
     "spec.containers[0].volumeMounts[0].subPath"),
    ({"volumes": [{"name": "data", "emptyDir": {}}],
      "containers": [{"name": "c", "image": "i",
                      "volumeMounts": [{"name": "data", "mountPath": "/x", "subPath": "/etc"}]}]},
     "spec.containers[0].volumeMounts[0].subPath"),
    ({"containers": [{"name": "../c", "image": "i"}]}, "spec.containers[0].name"),
])
async def test_other_names_and_references_are_invalid(api: BareApi, spec: Obj, field: str) -> None:
    r = await api.client.post(PODS, json=pod("p", **spec))
    assert r.status_code == 422, r.text
    assert field in {c["field"] for c in r.json()["details"]["causes"]}


async def test_host_network_is_forbidden_as_pod_security_says(api: BareApi) -> None:
    r = await api.client.post(PODS, json=pod("net", hostNetwork=True, hostPID=True))
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["reason"] == "Forbidden"
    assert body["message"] == ('pods "net" is forbidden: violates PodSecurity "baseline:latest": '
                               "host namespaces (hostNetwork=true, hostPID=true)")
    assert body["details"] == {"name": "net", "kind": "pods"}
    assert not api.store.exists("pods", "default", "net")


async def test_each_baseline_control_is_enforced(api: BareApi) -> None:
    bad = pod("bad", volumes=[{"name": "root", "hostPath": {"path": "/"}}],
              containers=[{"name": "c", "image": "i", "ports": [{"containerPort": 80, "hostPort": 80}],
                           "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]},
                                               "procMount": "Unmasked"}}],
              securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "1"}],
                               "seLinuxOptions": {"type": "spc_t"}})
    r = await api.client.post(PODS, json=bad)
    assert r.status_code == 403
    message = r.json()["message"]
    for words in ('non-default capabilities (container "c" must not include "SYS_ADMIN"',
                  'hostPath volumes (volume "root")', 'hostPort (container "c" uses hostPort 80)',
                  'privileged (container "c" must not set securityContext.privileged=true)',
                  "procMount (", "seLinuxOptions (pod set forbidden", "forbidden sysctls (kernel.msgmax)"):
        assert words in message


async def test_dry_run_and_updates_are_checked_too(api: BareApi) -> None:
    r = await api.client.post(PODS + "?dryRun=All", json=pod("dry", hostIPC=True))
    assert r.status_code == 403
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "web"},
          "spec": {"replicas": 0, "template": {"metadata": {"labels": {"app": "web"}},
                                               "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    assert (await api.client.post(RCS, json=rc)).status_code == 201
    r = await api.client.patch(f"{RCS}/web", json={"spec": {"template": {"spec": {"hostNetwork": True}}}},
                               headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 403, r.text
    assert r.json()["message"].startswith('replicationcontrollers "web" is forbidden: violates PodSecurity')


async def test_rc_and_job_templates_are_refused_early(api: BareApi) -> None:
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "web"},
          "spec": {"replicas": 1, "template": {
              "metadata": {"labels": {"app": "web"}},
              "spec": {"hostNetwork": True, "containers": [{"name": "c", "image": "i"}]}}}}
    r = await api.client.post(RCS, json=rc)
    assert r.status_code == 403
    assert r.json()["message"] == ('replicationcontrollers "web" is forbidden: violates PodSecurity '
                                   '"baseline:latest": host namespaces (hostNetwork=true)')
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"template": {"spec": {"restartPolicy": "Never",
                                          "volumes": [{"name": "/", "emptyDir": {}}],
                                          "containers": [{"name": "c", "image": "i"}]}}}}
    r = await api.client.post(JOBS, json=job)
    assert r.status_code == 422
    assert "spec.template.spec.volumes[0].name" in {c["field"] for c in r.json()["details"]["causes"]}


async def test_controllers_cannot_create_such_pods_either(api: BareApi) -> None:
    """A pod made from a template (as the RC and Job controllers do) passes the same admission."""
    from bayport.cluster.errors import ApiError

    with pytest.raises(ApiError) as refused:
        api.store.create_owned("pods", pod("made", hostNetwork=True))
    assert refused.value.code == 403
    with pytest.raises(ApiError) as invalid:
        api.store.create_owned("pods", attack({"name": "/", "emptyDir": {}}))
    assert invalid.value.code == 422


async def test_a_privileged_cluster_admits_what_baseline_refuses() -> None:
    """The level is the cluster's (ClusterSpec.pod_security, an operator's decision): no label a
    bay user can write lowers it."""
    async with bare_api() as served:
        served.store.pod_security = "privileged"
        r = await served.client.post(PODS, json=pod("net", hostNetwork=True))
        assert r.status_code == 201, r.text
    async with bare_api() as served:
        ns = {"metadata": {"name": "loose", "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}}
        assert (await served.client.post("/api/v1/namespaces", json=ns)).status_code == 201
        r = await served.client.post("/api/v1/namespaces/loose/pods", json=pod("net", hostNetwork=True))
        assert r.status_code == 403
