"""Store writes: resourceVersion, generateName, defaults, validation, conflicts, cascade, namespaces."""

from __future__ import annotations

from typing import Any

import pytest

from bayport.cluster.errors import ApiError
from bayport.cluster.store import Store


def pod(name: str, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, **meta},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}


@pytest.fixture
def store() -> Store:
    s = Store()
    s.create("namespaces", {"metadata": {"name": "default"}})
    return s


def test_every_write_bumps_the_resource_version(store: Store) -> None:
    start = store.resource_version
    created = store.create("pods", pod("a"))
    assert int(created["metadata"]["resourceVersion"]) == start + 1
    patched = store.patch("pods", "default", "a", {"metadata": {"labels": {"x": "y"}}},
                          "application/merge-patch+json")
    assert int(patched["metadata"]["resourceVersion"]) == start + 2
    deleted = store.delete("pods", "default", "a")
    assert int(deleted["metadata"]["resourceVersion"]) == start + 3
    assert store.resource_version == start + 3


def test_create_fills_metadata_and_pod_defaults(store: Store) -> None:
    obj = store.create("pods", pod("a"))
    meta = obj["metadata"]
    assert obj["kind"] == "Pod" and obj["apiVersion"] == "v1"
    assert meta["namespace"] == "default" and meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1
    spec = obj["spec"]
    assert spec["restartPolicy"] == "Always" and spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert spec["containers"][0]["terminationMessagePath"] == "/dev/termination-log"
    assert obj["status"]["phase"] == "Pending"
    latest = store.create("pods", {"metadata": {"name": "b"},
                                   "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    assert latest["spec"]["containers"][0]["imagePullPolicy"] == "Always"


def test_generate_name_gives_unique_names(store: Store) -> None:
    names = {store.create("pods", pod("", generateName="web-"))["metadata"]["name"] for _ in range(50)}
    assert len(names) == 50
    assert all(n.startswith("web-") and len(n) == 9 for n in names)


def test_returned_objects_are_private_copies(store: Store) -> None:
    obj = store.create("pods", pod("a"))
    obj["metadata"]["labels"] = {"changed": "yes"}
    listed, _ = store.list("pods", "default")
    listed[0]["spec"]["containers"].clear()
    fresh = store.get("pods", "default", "a")
    assert "labels" not in fresh["metadata"]
    assert fresh["spec"]["containers"]


def test_already_exists_and_not_found(store: Store) -> None:
    store.create("pods", pod("a"))
    with pytest.raises(ApiError) as exc:
        store.create("pods", pod("a"))
    assert exc.value.code == 409 and exc.value.reason == "AlreadyExists"
    with pytest.raises(ApiError) as exc:
        store.get("pods", "default", "missing")
    assert exc.value.code == 404 and exc.value.status_body()["details"]["name"] == "missing"
    with pytest.raises(ApiError) as exc:
        store.create("pods", pod("b", namespace="nowhere"))
    assert exc.value.code == 404 and 'namespaces "nowhere"' in exc.value.message


def test_stale_resource_version_is_a_conflict(store: Store) -> None:
    first = store.create("pods", pod("a"))
    store.patch("pods", "default", "a", {"metadata": {"labels": {"v": "2"}}},
                "application/merge-patch+json")
    first["metadata"]["labels"] = {"v": "stale"}
    with pytest.raises(ApiError) as exc:
        store.update("pods", first)
    assert exc.value.code == 409 and exc.value.reason == "Conflict"
    current = store.get("pods", "default", "a")
    current["metadata"]["labels"] = {"v": "3"}
    assert store.update("pods", current)["metadata"]["labels"] == {"v": "3"}


def test_update_keeps_status_and_status_subresource_keeps_spec(store: Store) -> None:
    store.create("pods", pod("a"))
    current = store.get("pods", "default", "a")
    current["status"] = {"phase": "Running"}
    current["metadata"]["labels"] = {"l": "1"}
    updated = store.update("pods", current)
    assert updated["status"]["phase"] == "Pending" and updated["metadata"]["labels"] == {"l": "1"}
    current = store.get("pods", "default", "a")
    current["status"] = {"phase": "Running"}
    current["metadata"]["labels"] = {"l": "2"}
    updated = store.update("pods", current, subresource="status")
    assert updated["status"]["phase"] == "Running" and updated["metadata"]["labels"] == {"l": "1"}


def test_noop_write_keeps_resource_version(store: Store) -> None:
    obj = store.create("pods", pod("a"))
    same = store.mutate("pods", "default", "a", lambda o: None)
    assert same["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    again = store.update("pods", store.get("pods", "default", "a"))
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


def test_mutate_writes_atomically_and_404s_when_gone(store: Store) -> None:
    store.create("pods", pod("a"))

    def bind(obj: dict[str, Any]) -> None:
        obj["spec"]["nodeName"] = "n1"

    bound = store.mutate("pods", "default", "a", bind)
    assert bound["spec"]["nodeName"] == "n1"
    assert store.list("pods", field_selector="spec.nodeName=n1")[0][0]["metadata"]["name"] == "a"
    store.delete("pods", "default", "a")
    with pytest.raises(ApiError) as exc:
        store.mutate("pods", "default", "a", bind)
    assert exc.value.code == 404


def test_validation_errors_name_the_fields(store: Store) -> None:
    bad = {"metadata": {"name": "Bad_Name"},
           "spec": {"containers": [{"name": "c"}, {"name": "c", "image": "x"}]}}
    with pytest.raises(ApiError) as exc:
        store.create("pods", bad)
    assert exc.value.code == 422 and exc.value.reason == "Invalid"
    fields = [c["field"] for c in exc.value.status_body()["details"]["causes"]]
    assert fields == ["metadata.name", "spec.containers[0].image", "spec.containers[1].name"]
    with pytest.raises(ApiError) as exc:
        store.create("namespaces", {"metadata": {"name": "x" * 64}})
    assert exc.value.code == 422
    with pytest.raises(ApiError) as exc:
        store.create("services", {"metadata": {"name": "s"}, "spec": {}})
    assert [c["field"] for c in exc.value.status_body()["details"]["causes"]] == ["spec.ports"]
    rc = {"metadata": {"name": "r"}, "spec": {"selector": {"app": "x"}, "template": {
        "metadata": {"labels": {"app": "y"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    with pytest.raises(ApiError) as exc:
        store.create("replicationcontrollers", rc)
    assert exc.value.status_body()["details"]["causes"][0]["field"] == "spec.template.metadata.labels"
    job = {"metadata": {"name": "j"}, "spec": {"template": {"spec": {
        "restartPolicy": "Always", "containers": [{"name": "c", "image": "i"}]}}}}
    with pytest.raises(ApiError) as exc:
        store.create("jobs", job)
    assert exc.value.status_body()["details"]["causes"][0]["field"] == "spec.template.spec.restartPolicy"


def test_kind_defaults(store: Store) -> None:
    svc = store.create("services", {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})
    assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["sessionAffinity"] == "None"
    assert svc["spec"]["ports"][0] == {"port": 80, "protocol": "TCP", "targetPort": 80}
    rc = store.create("replicationcontrollers", {"metadata": {"name": "r"}, "spec": {"template": {
        "metadata": {"labels": {"app": "r"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    assert rc["spec"]["replicas"] == 1 and rc["spec"]["selector"] == {"app": "r"}
    job = store.create("jobs", {"metadata": {"name": "j"}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}})
    uid = job["metadata"]["uid"]
    assert (job["spec"]["completions"], job["spec"]["parallelism"], job["spec"]["backoffLimit"]) == (1, 1, 6)
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert job["spec"]["template"]["metadata"]["labels"]["controller-uid"] == uid
    assert job["apiVersion"] == "batch/v1"
    pvc = store.create("persistentvolumeclaims", {"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    assert pvc["status"]["phase"] == "Pending"


def test_owner_cascade_background_and_orphan(store: Store) -> None:
    def owned(name: str, owner: dict[str, Any]) -> dict[str, Any]:
        return pod(name, ownerReferences=[{"apiVersion": "v1", "kind": owner["kind"],
                                           "name": owner["metadata"]["name"],
                                           "uid": owner["metadata"]["uid"], "controller": True}])

    template = {"metadata": {"labels": {"app": "r"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}
    rc = store.create("replicationcontrollers", {"metadata": {"name": "r"}, "spec": {"template": template}})
    store.create("pods", owned("r-1", rc))
    store.create("pods", owned("r-2", rc))
    store.create("pods", pod("free"))
    store.delete("replicationcontrollers", "default", "r")
    assert [p["metadata"]["name"] for p in store.list("pods")[0]] == ["free"]

    rc = store.create("replicationcontrollers", {"metadata": {"name": "r"}, "spec": {"template": template}})
    store.create("pods", owned("r-3", rc))
    store.delete("replicationcontrollers", "default", "r", propagation="Orphan")
    left = store.get("pods", "default", "r-3")
    assert "ownerReferences" not in left["metadata"]


def test_namespace_terminating_semantics(store: Store) -> None:
    store.create("namespaces", {"metadata": {"name": "team"}})
    store.create("pods", pod("a", namespace="team"))
    ns = store.delete("namespaces", None, "team")
    assert ns["status"]["phase"] == "Terminating" and ns["metadata"]["deletionTimestamp"]
    assert store.get("namespaces", None, "team")["status"]["phase"] == "Terminating"
    with pytest.raises(ApiError) as exc:
        store.create("pods", pod("b", namespace="team"))
    assert exc.value.code == 403 and exc.value.reason == "Forbidden"
    assert "being terminated" in exc.value.message
    store.finalize_namespace("team")
    assert not store.exists("namespaces", None, "team")
    assert store.count("pods", "team") == 0


def test_patch_types(store: Store) -> None:
    base = pod("a")
    base["spec"]["containers"].append({"name": "side", "image": "busybox:1"})
    store.create("pods", base)
    smp = {"spec": {"containers": [{"name": "side", "image": "busybox:2"}]}}
    out = store.patch("pods", "default", "a", smp, "application/strategic-merge-patch+json")
    assert [(c["name"], c["image"]) for c in out["spec"]["containers"]] == [
        ("c", "nginx:1.25"), ("side", "busybox:2")]
    out = store.patch("pods", "default", "a", [
        {"op": "add", "path": "/metadata/labels", "value": {"k": "v"}},
        {"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:1.26"}],
        "application/json-patch+json")
    assert out["metadata"]["labels"] == {"k": "v"} and out["spec"]["containers"][0]["image"] == "nginx:1.26"
    out = store.patch("pods", "default", "a", {"metadata": {"labels": {"k": None, "j": "w"}}},
                      "application/merge-patch+json")
    assert out["metadata"]["labels"] == {"j": "w"}
    with pytest.raises(ApiError) as exc:
        store.patch("pods", "default", "a", {"metadata": {"resourceVersion": "1"}},
                    "application/merge-patch+json")
    assert exc.value.code == 409
    with pytest.raises(ApiError) as exc:
        store.patch("pods", "default", "a", {"spec": {"restartPolicy": "Never"}},
                    "application/merge-patch+json")
    assert exc.value.code == 422


def test_apply_patch_creates_then_merges(store: Store) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMapLike", **pod("a")}
    created = store.patch("pods", "default", "a", body, "application/apply-patch+yaml")
    assert created["metadata"]["uid"] and created["kind"] == "Pod"
    again = store.patch("pods", "default", "a", {"metadata": {"labels": {"x": "1"}}},
                        "application/apply-patch+yaml")
    assert again["metadata"]["labels"] == {"x": "1"}
    assert again["metadata"]["uid"] == created["metadata"]["uid"]
