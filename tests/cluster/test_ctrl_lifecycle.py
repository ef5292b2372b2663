"""Cluster-level lifecycles: PVC binding (with its directory), namespace deletion, node removal,
event deduplication and expiry, and agents adopting what their runtime still runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bayport.cluster.controllers.events import NORMAL, EventRecorder
from bayport.cluster.runtime import SimulatedRuntime
from tests.cluster.ctrl_support import node_object, pod_body, running_cluster

Obj = dict[str, Any]


async def test_pvc_binds_and_gets_a_directory(tmp_path: Path) -> None:
    async with running_cluster(nodes=1, data_dir=tmp_path) as h:
        claim = h.store.create("persistentvolumeclaims", {
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}}})

        def bound() -> Obj | None:
            current = h.store.get("persistentvolumeclaims", "default", "data")
            return current if current["status"].get("phase") == "Bound" else None

        current = await h.wait_for(bound, what="claim Bound")
        volume = f"pvc-{claim['metadata']['uid']}"
        assert current["spec"]["volumeName"] == volume
        assert current["status"]["capacity"] == {"storage": "2Gi"}
        assert current["status"]["accessModes"] == ["ReadWriteOnce"]
        directory = tmp_path / "pv" / "default" / "data"
        assert directory.is_dir()
        pv = h.store.get("persistentvolumes", None, volume)
        assert pv["spec"]["claimRef"]["name"] == "data"
        assert pv["spec"]["hostPath"]["path"] == str(directory)
        # a pod using the claim gets the directory handed to the runtime
        body = pod_body("user", volumes=[{"name": "vol", "persistentVolumeClaim": {"claimName": "data"}}])
        h.store.create("pods", body)
        await h.running("user")
        rec = h.manager.fleet.agents["t-node-0"].record("default/user")
        assert rec is not None
        h.store.delete("persistentvolumeclaims", "default", "data")
        await h.wait_for(lambda: not directory.exists()
                         and not h.store.exists("persistentvolumes", None, volume), what="volume reclaimed")


async def test_pvc_binds_without_data_dir() -> None:
    async with running_cluster(nodes=1) as h:
        h.store.create("persistentvolumeclaims", {"metadata": {"name": "scratch"}, "spec": {
            "accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}})
        await h.wait_for(lambda: h.store.get("persistentvolumeclaims", "default", "scratch")["status"]
                         .get("phase") == "Bound", what="bound")


async def test_namespace_deletion_empties_and_finalizes() -> None:
    async with running_cluster(nodes=2) as h:
        h.store.create("namespaces", {"metadata": {"name": "tenant"}})
        rc = {"metadata": {"name": "web", "namespace": "tenant"},
              "spec": {"replicas": 2, "selector": {"app": "web"},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}
        h.store.create("replicationcontrollers", rc)
        h.store.create("services", {"metadata": {"name": "web", "namespace": "tenant"},
                                    "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
        await h.wait_for(lambda: sum(1 for p in h.store.list("pods", "tenant")[0]
                                     if p["status"].get("phase") == "Running") == 2, what="pods running")
        agents = h.manager.fleet.agents
        assert sum(len(a) for a in agents.values()) == 2
        h.store.delete("namespaces", None, "tenant")
        await h.wait_for(lambda: not h.store.exists("namespaces", None, "tenant"), what="namespace gone")
        for plural in ("pods", "services", "endpoints", "replicationcontrollers", "events"):
            assert h.store.list(plural, "tenant")[0] == []
        await h.wait_for(lambda: sum(len(a) for a in agents.values()) == 0, what="agents emptied")


async def test_removed_node_loses_its_pods_and_rc_reschedules() -> None:
    async with running_cluster(masters=0, nodes=2) as h:
        rc = {"metadata": {"name": "web"},
              "spec": {"replicas": 4, "selector": {"app": "web"},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}
        h.store.create("replicationcontrollers", rc)

        def placement() -> dict[str, int]:
            counts: dict[str, int] = {}
            for p in h.store.list("pods", "default")[0]:
                if p["status"].get("phase") == "Running":
                    counts[p["spec"]["nodeName"]] = counts.get(p["spec"]["nodeName"], 0) + 1
            return counts

        await h.wait_for(lambda: placement() == {"t-node-0": 2, "t-node-1": 2}, what="spread")
        runtime = h.manager.fleet.agents["t-node-1"].runtime
        h.store.delete("nodes", None, "t-node-1")
        await h.wait_for(lambda: placement() == {"t-node-0": 4}, what="rescheduled on the survivor")
        assert "t-node-1" not in h.manager.fleet.agents
        assert await runtime.list_pod_sandboxes() == []
        h.store.create("nodes", node_object("t-node-1", 2))
        h.store.create("pods", pod_body("late"))
        assert (await h.running("late"))["spec"]["nodeName"] == "t-node-1"


async def test_events_are_deduplicated_and_expire() -> None:
    async with running_cluster(nodes=1, event_ttl=0.2) as h:
        recorder = EventRecorder(h.store, ttl=0.2)
        pod = h.store.create("pods", pod_body("p"))
        for _ in range(3):
            recorder.record(pod, NORMAL, "Poked", "poked again", component="test")
        events = h.events(reason="Poked")
        assert len(events) == 1 and events[0]["count"] == 3
        assert events[0]["involvedObject"]["uid"] == pod["metadata"]["uid"]
        assert events[0]["source"] == {"component": "test"}
        await asyncio.sleep(0.3)
        assert recorder.expire() == 1
        assert h.events(reason="Poked") == []
        await h.wait_for(lambda: not h.events(reason="Scheduled"), timeout=3, what="manager sweep")


async def test_agent_restart_adopts_running_pods() -> None:
    runtimes: dict[str, SimulatedRuntime] = {}

    def factory(node: str) -> SimulatedRuntime:
        runtimes.setdefault(node, SimulatedRuntime(node))
        return runtimes[node]

    async with running_cluster(masters=0, nodes=1, runtime_factory=factory) as h:
        h.store.create("pods", pod_body("keep"))
        before = (await h.running("keep"))["status"]
        fleet = h.manager.fleet
        old_agent = fleet.agents["t-node-0"]
        agent = await fleet.restart_agent("t-node-0")
        assert agent is not old_agent and agent.runtime is old_agent.runtime
        await h.wait_for(lambda: (rec := agent.record("default/keep")) is not None
                         and rec.sandbox_id is not None, what="pod adopted")
        await asyncio.sleep(0.05)
        after = h.pod("keep")["status"]
        assert after["containerStatuses"] == before["containerStatuses"]
        assert after["podIP"] == before["podIP"]
        assert len(await runtimes["t-node-0"].list_pod_sandboxes()) == 1


async def test_reconciling_a_settled_cluster_again_changes_nothing(tmp_path: Path) -> None:
    async with running_cluster(nodes=2, data_dir=tmp_path) as h:
        template = {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx"}]}}
        h.store.create("replicationcontrollers", {"metadata": {"name": "web"}, "spec": {
            "replicas": 3, "selector": {"app": "web"}, "template": template}})
        h.store.create("services", {"metadata": {"name": "web"},
                                    "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
        h.store.create("persistentvolumeclaims", {"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
        job_template = {"metadata": {"annotations": {"bayport.io/simulated-duration": "0"}},
                        "spec": {"restartPolicy": "Never", "containers": [{"name": "w", "image": "busybox"}]}}
        h.store.create("jobs", {"metadata": {"name": "once"}, "spec": {"template": job_template}})

        def settled() -> bool:
            rc = h.store.get("replicationcontrollers", "default", "web")
            job = h.store.get("jobs", "default", "once")
            ep = h.store.get("endpoints", "default", "web")
            pvc = h.store.get("persistentvolumeclaims", "default", "data")
            return (rc["status"].get("readyReplicas") == 3 and job["status"].get("succeeded") == 1
                    and len((ep.get("subsets") or [{}])[0].get("addresses") or ()) == 3
                    and pvc["status"].get("phase") == "Bound")

        await h.wait_for(settled, what="everything settled")
        await asyncio.sleep(0.1)
        rv = h.store.resource_version
        m = h.manager
        for _ in range(2):
            for key in m.informers["replicationcontrollers"].cached_keys():
                m.replication.reconcile(key)
            for key in m.informers["jobs"].cached_keys():
                m.jobs.reconcile(key)
            for key in m.informers["services"].cached_keys():
                m.endpoints.reconcile(key)
            for key in m.informers["persistentvolumeclaims"].cached_keys():
                m.volumes.reconcile(key)
            for key in m.informers["pods"].cached_keys():
                m.scheduler.reconcile(key)
            for key in m.informers["namespaces"].cached_keys():
                m.namespaces.reconcile(key)
        await asyncio.sleep(0.1)
        assert h.store.resource_version == rv
