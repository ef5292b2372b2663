"""Restart = resume, for the product as shipped: ``bayport serve`` is stopped (SIGTERM, then
SIGKILL) and started again on the same data dir. Every bay answers at the same address with the
same CA, kubeconfigs handed out before keep working, every object is there with its uid, rows
and cluster objects agree, and podman containers that kept running are adopted, not restarted."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.podman_support import IMAGE, require_podman
from tests.e2e.test_workloads_cli import kubectl_binary
from tests.product.served import Served, served
from tests.product.test_serve_podman import POD, wait_pods_running

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]

RC = """apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: 3
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
"""


async def kubectl_json(kubeconfig: Path, *args: str) -> Any:
    done = await asyncio.to_thread(subprocess.run, [kubectl_binary(), "--kubeconfig", str(kubeconfig),
                                                    *args, "-o", "json"], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def uids(listing: dict[str, Any]) -> dict[str, str]:
    return {i["metadata"]["name"]: i["metadata"]["uid"] for i in listing["items"]}


async def snapshot(server: Served, kubeconfig: Path) -> dict[str, Any]:
    bay = await server.cli_json("bay-show", "tb")
    return {"address": bay["api_address"], "status": bay["status"], "health": bay["health_status"],
            "pods": uids(await kubectl_json(kubeconfig, "get", "pods", "-A")),
            "rcs": uids(await kubectl_json(kubeconfig, "get", "rc", "-A")),
            "namespaces": uids(await kubectl_json(kubeconfig, "get", "namespaces")),
            "pvcs": uids(await kubectl_json(kubeconfig, "get", "pvc", "-A")),
            "rows": sorted((p["name"], p["status"])
                           for p in await server.cli_json("pod-list", "--bay", "tb")),
            "volumes": sorted((v["name"], v["status"]) for v in
                              await server.cli_json("volume-list", "--tenant", server.env["TENANT"]))}


@pytest.mark.timeout(300)
async def test_serve_restarts_resume_every_object_at_the_same_address(tmp_path: Path) -> None:
    kubectl_binary()
    async with served(tmp_path / "data") as server:
        await server.cli("baymodel-create", "--name", "sim", "--image-id", "fedora-atomic",
                         "--keypair-id", "default", "--external-network-id", "public",
                         "--labels", "runtime=simulated")
        await server.cli("bay-create", "--name", "tb", "--baymodel", "sim", "--node-count", "2", "--wait")
        (tmp_path / "pod.yaml").write_text(POD.format(name="solo", image="nginx"))
        (tmp_path / "rc.yaml").write_text(RC)
        await server.cli("pod-create", "--manifest", str(tmp_path / "pod.yaml"), "--bay", "tb", "--wait")
        await server.cli("rc-create", "--manifest", str(tmp_path / "rc.yaml"), "--bay", "tb")
        tenant = (await server.cli_json("tenant-create", "--name", "acme", "--bay", "tb"))["id"]
        server.env["TENANT"] = tenant
        await server.cli("volume-create", "--tenant", tenant, "--name", "src")
        job = await server.cli_json("job-submit", "--tenant", tenant, "--cmd", "true", "--vol", "src:/src",
                                    "--wait")
        kubeconfig = tmp_path / "tb.kubeconfig"
        await server.cli("bay-config", "tb", "-o", str(kubeconfig))
        await wait_pods_running(server, "tb", {"solo"}, timeout=30)
        before = await snapshot(server, kubeconfig)
        assert len(before["pods"]) >= 4 and before["pvcs"], before

        for sig in (signal.SIGTERM, signal.SIGKILL):
            took = await server.stop(sig)
            if sig == signal.SIGTERM:
                assert took < 10, f"SIGTERM took {took:.1f}s"
            began = time.monotonic()
            await server.start()
            deadline = time.monotonic() + 60
            while True:
                try:
                    after = await snapshot(server, kubeconfig)   # the kubeconfig from before
                    if after["rows"] == before["rows"] and after["pods"] == before["pods"]:
                        break
                except AssertionError:
                    after = None
                assert time.monotonic() < deadline, (before, after, server.log_text()[-4000:])
                await asyncio.sleep(0.3)
            print(f"after {signal.Signals(sig).name}: every object back in {time.monotonic() - began:.1f}s")
            assert after == before
            assert "lost" not in (await server.cli_json("bay-show", "tb"))["status_reason"]
            jobs = await server.cli_json("job-list", "--tenant", tenant)
            assert [(j["uuid"], j["status"]) for j in jobs] == [(job["uuid"], "Succeeded")]
        # The tenant's namespace is there for new work too.
        await server.cli("volume-create", "--tenant", tenant, "--name", "dest")
        await server.cli("bay-delete", "tb", "--wait")
        assert not (tmp_path / "data" / "bays").exists() or not list((tmp_path / "data" / "bays").iterdir())


@pytest.mark.podman
@pytest.mark.root
@pytest.mark.timeout(300)
async def test_podman_containers_are_adopted_across_a_restart(tmp_path: Path) -> None:
    await require_podman(bayport_network=True)
    async with served(tmp_path / "data") as server:
        await server.cli("baymodel-create", "--name", "pm", "--image-id", "fedora-atomic",
                         "--keypair-id", "default", "--external-network-id", "public",
                         "--labels", "runtime=podman")
        await server.cli("bay-create", "--name", "tb", "--baymodel", "pm", "--node-count", "1", "--wait")
        kubeconfig = tmp_path / "tb.kubeconfig"
        await server.cli("bay-config", "tb", "-o", str(kubeconfig))
        for name in ("one", "two"):
            (tmp_path / f"{name}.yaml").write_text(POD.format(name=name, image=IMAGE))
            await server.cli("pod-create", "--manifest", str(tmp_path / f"{name}.yaml"), "--bay", "tb")
        await wait_pods_running(server, "tb", {"one", "two"}, timeout=60)

        def containers() -> dict[str, tuple[str, int]]:
            pods = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]
                    for p in json.loads(subprocess.run(
                        [kubectl_binary(), "--kubeconfig", str(kubeconfig), "get", "pods", "-o", "json"],
                        capture_output=True, check=True, timeout=60).stdout)["items"]}
            return {n: (s.get("containerID", ""), s.get("restartCount", 0)) for n, s in pods.items()}

        before = await asyncio.to_thread(containers)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            await server.stop(sig)
            if sig == signal.SIGKILL:   # a pod that dies while nobody watches is reported with its exit
                cid = before["two"][0].split("://")[-1]
                subprocess.run(["podman", "kill", cid], check=True, capture_output=True, timeout=60)
            await server.start()
            await wait_pods_running(server, "tb", {"one"}, timeout=60)
            now = await asyncio.to_thread(containers)
            assert now["one"] == before["one"], (before, now)
        deadline = time.monotonic() + 30
        while (await asyncio.to_thread(containers))["two"][1] < 1:
            assert time.monotonic() < deadline, "the killed container was not reported and restarted"
            await asyncio.sleep(0.5)
        bay_uuid = (await server.cli_json("bay-show", "tb"))["uuid"]
        await server.cli("bay-delete", "tb", "--wait")
        left = subprocess.run(["podman", "ps", "-a", "--filter", f"label=bayport.cluster={bay_uuid}",
                               "--format", "{{.Names}}"], capture_output=True, text=True, check=True)
        assert left.stdout.split() == []
        netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        assert f"bp-{bay_uuid[:8]}" not in netns


@pytest.mark.timeout(180)
async def test_a_corrupt_store_fails_that_bay_alone(tmp_path: Path) -> None:
    async with served(tmp_path / "data") as server:
        await server.cli("baymodel-create", "--name", "sim", "--image-id", "fedora-atomic",
                         "--keypair-id", "default", "--external-network-id", "public",
                         "--labels", "runtime=simulated")
        for name in ("broken", "fine"):
            await server.cli("bay-create", "--name", name, "--baymodel", "sim", "--node-count", "1", "--wait")
        (tmp_path / "pod.yaml").write_text(POD.format(name="kept", image="nginx"))
        await server.cli("pod-create", "--manifest", str(tmp_path / "pod.yaml"), "--bay", "fine", "--wait")
        broken = (await server.cli_json("bay-show", "broken"))["uuid"]
        await server.stop(signal.SIGTERM)
        store = tmp_path / "data" / "bays" / broken / "objects.sqlite"
        for suffix in ("-wal", "-shm"):
            store.with_name(store.name + suffix).unlink(missing_ok=True)
        store.write_bytes(b"this is not a database" * 100)
        await server.start()
        deadline = time.monotonic() + 30
        while True:
            bay = await server.cli_json("bay-show", "broken")
            if bay["health_status"] == "UNHEALTHY":
                break
            assert time.monotonic() < deadline, bay
            await asyncio.sleep(0.3)
        assert "objects.sqlite" in bay["status_reason"] and "not a database" in bay["status_reason"], bay
        await wait_pods_running(server, "fine", {"kept"}, timeout=30)
