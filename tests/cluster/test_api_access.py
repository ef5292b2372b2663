"""Who may do what in an embedded cluster, over real HTTP: the reader token reads and nothing
more (403 in the API server's words), the admin token writes, and only the pod-network
controller's token may set the kuryr.org annotations that choose a pod's address — on a pod or
on a pod template (422, a forbidden field) — while everyone may still change a pod's other
annotations."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bayport.cluster.host import ClusterSpec, EmbeddedCluster
from bayport.cluster.pod_network_admission import PORT_ID, PROTECTED_PREFIX
from bayport.network import annotation_keys
from tests.cluster.apiserver_helpers import pod_manifest

ADMIN, READER, NETWORK = "admin-tok", "reader-tok", "network-tok"
PODS = "/api/v1/namespaces/default/pods"
MERGE = {"Content-Type": "application/merge-patch+json"}
PORT = "kuryr.org/neutron-port"


@pytest.fixture
async def cluster() -> AsyncIterator[EmbeddedCluster]:
    c = EmbeddedCluster(ClusterSpec(name="acl", uid="u-acl", token=ADMIN, reader_token=READER,
                                    network_token=NETWORK, node_count=1))
    await c.start()
    try:
        yield c
    finally:
        await c.stop()


def client(c: EmbeddedCluster, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=c.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def forged(ip: str, **fields: Any) -> dict[str, str]:
    return {PORT: json.dumps({"id": "p", "mac_address": "fa:16:3e:00:00:09",
                              "fixed_ips": [{"subnet_id": "s", "ip_address": ip}], **fields})}


def test_the_protected_names_are_the_network_packages() -> None:
    for key in (annotation_keys.NEUTRON_PORT, annotation_keys.NEUTRON_SUBNET):
        assert key.startswith(PROTECTED_PREFIX)
    assert PORT_ID == annotation_keys.PORT_ID


async def test_reader_reads_and_every_write_is_forbidden(cluster: EmbeddedCluster) -> None:
    async with client(cluster, ADMIN) as admin, client(cluster, READER) as reader:
        assert (await admin.post(PODS, json=pod_manifest("web"))).status_code == 201
        assert (await reader.get(PODS)).json()["items"][0]["metadata"]["name"] == "web"
        assert (await reader.get(f"{PODS}/web")).status_code == 200
        assert (await reader.get("/api/v1/nodes")).status_code == 200
        assert (await reader.get("/api")).status_code == 200
        assert (await reader.get("/version")).status_code == 200
        watch = await reader.get(PODS, params={"watch": "1", "timeoutSeconds": "1"})
        assert watch.status_code == 200 and b'"ADDED"' in watch.content

        denied = await reader.post(PODS, json=pod_manifest("mine"))
        assert denied.status_code == 403
        assert denied.json() == {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 403,
            "reason": "Forbidden", "details": {"kind": "pods"},
            "message": 'pods is forbidden: User "bayport:reader" cannot create resource "pods" in '
                       'API group "" in the namespace "default"'}
        delete = await reader.delete(f"{PODS}/web")
        assert delete.status_code == 403
        assert delete.json()["message"] == (
            'pods "web" is forbidden: User "bayport:reader" cannot delete resource "pods" in API '
            'group "" in the namespace "default"')
        writes = [
            reader.put(f"{PODS}/web", json=(await reader.get(f"{PODS}/web")).json()),
            reader.patch(f"{PODS}/web", json={"metadata": {"labels": {"x": "y"}}}, headers=MERGE),
            reader.patch(f"{PODS}/web/status", json={"status": {"phase": "Failed"}}, headers=MERGE),
            reader.post(f"{PODS}/web/binding", json={"target": {"kind": "Node", "name": "n"}}),
            reader.delete(PODS),
            reader.post("/api/v1/namespaces", json={"metadata": {"name": "evil"}}),
            reader.post("/apis/batch/v1/namespaces/default/jobs", json={"metadata": {"name": "j"}}),
            reader.patch("/api/v1/namespaces/default/replicationcontrollers/rc/scale",
                         json={"spec": {"replicas": 9}}, headers=MERGE),
        ]
        for request in writes:
            answer = await request
            assert answer.status_code == 403, answer.text
            assert answer.json()["reason"] == "Forbidden"
            assert 'User "bayport:reader" cannot ' in answer.json()["message"]
        ns = (await reader.post("/api/v1/namespaces", json={"metadata": {"name": "evil"}})).json()
        assert ns["message"].endswith('cannot create resource "namespaces" in API group "" at the '
                                      "cluster scope")
        job = (await reader.post("/apis/batch/v1/namespaces/default/jobs", json={})).json()
        assert job["message"].startswith('jobs.batch is forbidden: User "bayport:reader" cannot create '
                                         'resource "jobs" in API group "batch"')
        binding = (await reader.post(f"{PODS}/web/binding", json={})).json()
        assert 'cannot create resource "pods/binding"' in binding["message"]
        # Nothing the reader tried happened.
        pod = (await admin.get(f"{PODS}/web")).json()
        assert "x" not in pod["metadata"]["labels"]
        assert (await admin.get("/api/v1/namespaces/evil")).status_code == 404
        assert [p["metadata"]["name"] for p in (await admin.get(PODS)).json()["items"]] == ["web"]


async def test_unknown_tokens_are_401(cluster: EmbeddedCluster) -> None:
    async with client(cluster, "guess") as guess, httpx.AsyncClient(base_url=cluster.url) as anon:
        assert (await guess.get(PODS)).status_code == 401
        assert (await anon.get(PODS)).status_code == 401
        assert (await guess.post(PODS, json=pod_manifest("x"))).status_code == 401


async def test_a_cluster_without_reader_token_accepts_no_empty_bearer() -> None:
    c = EmbeddedCluster(ClusterSpec(name="old", uid="u-old", token=ADMIN, node_count=1))
    await c.start()
    try:
        for header in (b"Bearer ", b"Bearer", b""):
            assert c.app.authenticator.identify(header) is None
        async with client(c, ADMIN) as admin:
            assert (await admin.get(PODS)).status_code == 200
        with pytest.raises(ValueError, match="no read-only token"):
            c.kubeconfig(reader=True)
    finally:
        await c.stop()


async def test_kubeconfigs_carry_the_token_of_their_role(cluster: EmbeddedCluster) -> None:
    reader = json.loads(cluster.kubeconfig(reader=True))
    admin = json.loads(cluster.kubeconfig())
    assert reader["users"][0]["user"]["token"] == READER
    assert admin["users"][0]["user"]["token"] == ADMIN
    assert reader["users"][0]["name"].endswith("-reader")


@pytest.mark.parametrize("ip", ["10.100.0.7", "10.254.0.1", "127.0.0.1"])
async def test_only_the_network_controller_sets_the_port_annotation(cluster: EmbeddedCluster,
                                                                    ip: str) -> None:
    async with client(cluster, ADMIN) as admin, client(cluster, NETWORK) as network:
        body = pod_manifest("thief")
        body["metadata"]["annotations"] = forged(ip)
        refused = await admin.post(PODS, json=body)
        assert refused.status_code == 422, refused.text
        status = refused.json()
        assert status["reason"] == "Invalid"
        assert status["message"] == (
            'Pod "thief" is invalid: metadata.annotations[kuryr.org/neutron-port]: Forbidden: set or '
            "changed only by Bayport's pod-network controller, not by User \"bayport:admin\"")
        assert status["details"]["causes"] == [{
            "reason": "FieldValueForbidden", "field": "metadata.annotations[kuryr.org/neutron-port]",
            "message": "Forbidden: set or changed only by Bayport's pod-network controller, not by "
                       'User "bayport:admin"'}]
        assert (await admin.get(f"{PODS}/thief")).status_code == 404
        dry = await admin.post(PODS, json=body, params={"dryRun": "All"})
        assert dry.status_code == 422

        assert (await admin.post(PODS, json=pod_manifest("thief"))).status_code == 201
        for patch in ({"metadata": {"annotations": forged(ip)}},
                      {"metadata": {"annotations": {"kuryr.org/anything": "x"}}},
                      {"metadata": {"annotations": {PORT_ID: "p"}}}):
            answer = await admin.patch(f"{PODS}/thief", json=patch, headers=MERGE)
            assert answer.status_code == 422, answer.text
        json_patch = [{"op": "add", "path": "/metadata/annotations",
                       "value": {"kuryr.org/neutron-subnet": "{}"}}]
        answer = await admin.patch(f"{PODS}/thief", json=json_patch,
                                   headers={"Content-Type": "application/json-patch+json"})
        assert answer.status_code == 422
        apply = await admin.patch(f"{PODS}/thief", params={"fieldManager": "me"},
                                  content=json.dumps({"apiVersion": "v1", "kind": "Pod",
                                                      "metadata": {"name": "thief",
                                                                   "annotations": forged(ip)}}),
                                  headers={"Content-Type": "application/apply-patch+yaml"})
        assert apply.status_code == 422

        # The pod-network controller's own token may.
        granted = await network.patch(f"{PODS}/thief", json={"metadata": {"annotations": forged(ip)}},
                                      headers=MERGE)
        assert granted.status_code == 200, granted.text
        # After which others can neither change nor remove it ...
        current = (await admin.get(f"{PODS}/thief")).json()
        current["metadata"]["annotations"].pop(PORT)
        assert (await admin.put(f"{PODS}/thief", json=current)).status_code == 422
        changed = await admin.patch(f"{PODS}/thief", json={"metadata": {"annotations": {PORT: None}}},
                                    headers=MERGE)
        assert changed.status_code == 422
        # ... but may still change everything else about the pod.
        fine = await admin.patch(f"{PODS}/thief", json={"metadata": {"annotations": {"note": "ok"}}},
                                 headers=MERGE)
        assert fine.status_code == 200, fine.text
        kept = (await admin.get(f"{PODS}/thief")).json()
        assert kept["metadata"]["annotations"][PORT] == forged(ip)[PORT]
        put = await admin.put(f"{PODS}/thief", json=kept)
        assert put.status_code == 200, put.text


async def test_pod_templates_cannot_carry_the_port_annotation(cluster: EmbeddedCluster) -> None:
    template = {"metadata": {"labels": {"app": "t"}, "annotations": forged("10.100.0.9")},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc"},
          "spec": {"replicas": 2, "selector": {"app": "t"}, "template": template}}
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"template": {**template, "spec": {**template["spec"], "restartPolicy": "Never"}}}}
    async with client(cluster, ADMIN) as admin:
        answer = await admin.post("/api/v1/namespaces/default/replicationcontrollers", json=rc)
        assert answer.status_code == 422, answer.text
        assert answer.json()["message"].startswith(
            'ReplicationController "rc" is invalid: spec.template.metadata.annotations[kuryr.org/')
        answer = await admin.post("/apis/batch/v1/namespaces/default/jobs", json=job)
        assert answer.status_code == 422, answer.text
        assert answer.json()["message"].startswith('Job.batch "j" is invalid: spec.template.metadata')
        rc["spec"]["template"]["metadata"].pop("annotations")
        assert (await admin.post("/api/v1/namespaces/default/replicationcontrollers",
                                 json=rc)).status_code == 201
        answer = await admin.patch("/api/v1/namespaces/default/replicationcontrollers/rc",
                                   json={"spec": {"template": {"metadata": {
                                       "annotations": forged("10.100.0.9")}}}}, headers=MERGE)
        assert answer.status_code == 422, answer.text


async def test_access_reviews_answer_by_the_same_rule(cluster: EmbeddedCluster) -> None:
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"

    def review(verb: str, resource: str = "pods") -> dict[str, Any]:
        return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"namespace": "default", "verb": verb,
                                                "resource": resource}}}

    async with client(cluster, ADMIN) as admin, client(cluster, READER) as reader:
        for who, verb, allowed in ((reader, "get", True), (reader, "watch", True),
                                   (reader, "create", False), (reader, "delete", False),
                                   (admin, "create", True), (admin, "delete", True)):
            answer = await who.post(path, json=review(verb))
            assert answer.status_code == 201, answer.text
            assert answer.json()["status"]["allowed"] is allowed, (verb, answer.json())
        path_review = {"spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "post"}}}
        assert (await reader.post(path, json=path_review)).json()["status"]["allowed"] is False
        assert (await reader.get(path)).status_code == 405
