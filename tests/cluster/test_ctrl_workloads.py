"""Replication controllers and Jobs: replicas kept, scale up/down, cascade delete, adoption;
jobs completing, failing after backoffLimit, and deleted after ttlSecondsAfterFinished."""

from __future__ import annotations

from typing import Any

from tests.cluster.ctrl_support import Harness, running_cluster

Obj = dict[str, Any]


def rc_body(name: str, replicas: int, **template_meta: Any) -> Obj:
    return {
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"app": name},
                 "template": {"metadata": {"labels": {"app": name}, **template_meta},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}},
    }


def job_body(name: str, *, duration: str = "0", exit_code: str = "0", **spec: Any) -> Obj:
    return {
        "metadata": {"name": name},
        "spec": {"template": {"metadata": {"annotations": {"bayport.io/simulated-duration": duration,
                                                           "bayport.io/simulated-exit-code": exit_code}},
                              "spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "work", "image": "busybox:1.36"}]}},
                 **spec},
    }


def owned_pods(h: Harness, uid: str) -> list[Obj]:
    items, _ = h.store.list("pods", "default")
    return [p for p in items if any(r["uid"] == uid for r in p["metadata"].get("ownerReferences") or ())]


def running_count(h: Harness, uid: str) -> int:
    return sum(1 for p in owned_pods(h, uid) if p["status"].get("phase") == "Running")


async def test_rc_creates_owned_pods_and_reports_status() -> None:
    async with running_cluster(nodes=2) as h:
        rc = h.store.create("replicationcontrollers", rc_body("web", 3))
        uid = rc["metadata"]["uid"]

        def settled() -> Obj | None:
            current = h.store.get("replicationcontrollers", "default", "web")
            status = current.get("status") or {}
            return current if status.get("readyReplicas") == 3 else None

        current = await h.wait_for(settled, what="3 ready replicas")
        assert current["status"] == {"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 3,
                                     "availableReplicas": 3, "observedGeneration": 1}
        pods = owned_pods(h, uid)
        assert len(pods) == 3
        for pod in pods:
            assert pod["metadata"]["name"].startswith("web-")
            ref = pod["metadata"]["ownerReferences"][0]
            assert ref == {"apiVersion": "v1", "kind": "ReplicationController", "name": "web", "uid": uid,
                           "controller": True, "blockOwnerDeletion": True}
        assert len(h.events(reason="SuccessfulCreate", name="web")) == 3


async def test_rc_scales_up_and_down_and_replaces_deleted_pods() -> None:
    async with running_cluster(nodes=2) as h:
        rc = h.store.create("replicationcontrollers", rc_body("web", 2))
        uid = rc["metadata"]["uid"]
        await h.wait_for(lambda: running_count(h, uid) == 2, what="2 running")
        h.store.patch("replicationcontrollers", "default", "web", {"spec": {"replicas": 5}},
                      "application/merge-patch+json")
        await h.wait_for(lambda: running_count(h, uid) == 5, what="5 running")
        victim = owned_pods(h, uid)[0]["metadata"]["name"]
        h.store.delete("pods", "default", victim)
        await h.wait_for(lambda: running_count(h, uid) == 5 and victim not in
                         {p["metadata"]["name"] for p in owned_pods(h, uid)}, what="replacement")
        h.store.patch("replicationcontrollers", "default", "web", {"spec": {"replicas": 1}},
                      "application/merge-patch+json")
        await h.wait_for(lambda: len(owned_pods(h, uid)) == 1, what="scaled to 1")
        await h.wait_for(lambda: h.store.get("replicationcontrollers", "default", "web")["status"]
                         == {"replicas": 1, "fullyLabeledReplicas": 1, "readyReplicas": 1,
                             "availableReplicas": 1, "observedGeneration": 3}, what="status after scale")
        # idempotent: nothing moves any more
        rv = h.store.resource_version
        h.manager.replication.reconcile("default/web")
        assert h.store.resource_version == rv


async def test_rc_scale_down_prefers_pending_pods() -> None:
    async with running_cluster(masters=0, nodes=1) as h:
        rc = h.store.create("replicationcontrollers", rc_body("web", 2))
        uid = rc["metadata"]["uid"]
        await h.wait_for(lambda: running_count(h, uid) == 2, what="2 running")
        h.store.patch("nodes", None, "t-node-0", {"spec": {"unschedulable": True}},
                      "application/merge-patch+json")
        h.store.patch("replicationcontrollers", "default", "web", {"spec": {"replicas": 3}},
                      "application/merge-patch+json")
        await h.wait_for(lambda: h.events(reason="FailedScheduling"), what="a pending third pod")
        h.store.patch("replicationcontrollers", "default", "web", {"spec": {"replicas": 2}},
                      "application/merge-patch+json")
        await h.wait_for(lambda: len(owned_pods(h, uid)) == 2, what="back to 2")
        assert running_count(h, uid) == 2                   # the unscheduled one went


async def test_rc_delete_cascades_and_orphans_are_adopted() -> None:
    async with running_cluster(nodes=2) as h:
        h.store.create("pods", {"metadata": {"name": "stray", "labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}})
        await h.running("stray")
        rc = h.store.create("replicationcontrollers", rc_body("web", 2))
        uid = rc["metadata"]["uid"]
        await h.wait_for(lambda: running_count(h, uid) == 2, what="2 running")
        assert "stray" in {p["metadata"]["name"] for p in owned_pods(h, uid)}
        h.store.delete("replicationcontrollers", "default", "web")
        await h.wait_for(lambda: h.store.count("pods", "default") == 0, what="cascade")


async def test_job_with_zero_duration_completes() -> None:
    async with running_cluster(nodes=2) as h:
        job = h.store.create("jobs", job_body("once", completions=3, parallelism=2))

        def complete() -> Obj | None:
            current = h.store.get("jobs", "default", "once")
            conds = {c["type"]: c for c in current["status"].get("conditions") or ()}
            return current if "Complete" in conds else None

        current = await h.wait_for(complete, what="job Complete")
        status = current["status"]
        assert status["succeeded"] == 3 and status["failed"] == 0 and status["active"] == 0
        assert status["startTime"] and status["completionTime"]
        cond = next(c for c in status["conditions"] if c["type"] == "Complete")
        assert cond["status"] == "True"
        pods = owned_pods(h, job["metadata"]["uid"])
        assert len(pods) == 3 and all(p["status"]["phase"] == "Succeeded" for p in pods)
        labels = pods[0]["metadata"]["labels"]
        assert labels["job-name"] == "once" and labels["controller-uid"] == job["metadata"]["uid"]
        assert labels["batch.kubernetes.io/job-name"] == "once"
        assert pods[0]["metadata"]["name"].startswith("once-")
        term = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 0 and term["reason"] == "Completed"
        rv = h.store.resource_version
        h.manager.jobs.reconcile("default/once")
        assert h.store.resource_version == rv


async def test_job_failing_with_exit_code_3_hits_backoff_limit() -> None:
    async with running_cluster(nodes=2) as h:
        job = h.store.create("jobs", job_body("bad", duration="0.01", exit_code="3", backoffLimit=2))

        def failed() -> Obj | None:
            current = h.store.get("jobs", "default", "bad")
            conds = {c["type"]: c for c in current["status"].get("conditions") or ()}
            return current if "Failed" in conds else None

        current = await h.wait_for(failed, what="job Failed")
        cond = next(c for c in current["status"]["conditions"] if c["type"] == "Failed")
        assert cond["reason"] == "BackoffLimitExceeded"
        assert current["status"]["failed"] == 3 and current["status"]["succeeded"] == 0
        assert "completionTime" not in current["status"]
        pods = owned_pods(h, job["metadata"]["uid"])
        assert len(pods) == 3 and all(p["status"]["phase"] == "Failed" for p in pods)
        term = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 3 and term["reason"] == "Error"
        assert h.events(reason="BackoffLimitExceeded", name="bad")


async def test_job_ttl_deletes_job_and_pods() -> None:
    async with running_cluster(nodes=1) as h:
        h.store.create("jobs", job_body("brief", ttlSecondsAfterFinished=0))
        h.store.create("jobs", job_body("later", ttlSecondsAfterFinished=1))
        await h.wait_for(lambda: not h.store.exists("jobs", "default", "brief"), what="brief deleted")
        assert h.store.exists("jobs", "default", "later")
        await h.wait_for(lambda: not h.store.exists("jobs", "default", "later"), timeout=5, what="later gone")
        await h.wait_for(lambda: h.store.count("pods", "default") == 0, what="job pods gone")


async def test_job_pods_default_to_one_second() -> None:
    async with running_cluster(nodes=1) as h:
        body = job_body("default-duration")
        del body["spec"]["template"]["metadata"]["annotations"]["bayport.io/simulated-duration"]
        h.store.create("jobs", body)
        pod = await h.wait_for(lambda: next(iter(h.store.list("pods", "default")[0]), None))
        await h.running(pod["metadata"]["name"])
        await h.wait_for(lambda: (h.store.get("jobs", "default", "default-duration")["status"]
                                  .get("succeeded") == 1), timeout=4, what="done after ~1 s")
