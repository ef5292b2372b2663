"""Issue #4 from the outside: pods made with the real kubectl and with ``bayport pod-create``
all run with their port's address as podIP; ``bayport port-list / network-list /
subnet-list`` show it through the console script; and ``bayport netd``, a separate process,
takes over the pod network of a running Bayport whose in-process controller is stopped."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest

from tests.e2e.test_workloads_cli import BIN, bayport, bayport_json, kubectl, kubectl_binary
from tests.kube.workload_helpers import cluster
from tests.network.controller_support import controller, networked_bay, pod, pool_subnets, wait_pod
from tests.stack import Stack


async def _kubectl_pods(kubeconfig: Path) -> dict[str, dict[str, str]]:
    listing = json.loads(await kubectl(kubeconfig, "get", "pods", "-o", "json"))
    return {p["metadata"]["name"]: {"ip": p["status"].get("podIP"), "phase": p["status"].get("phase"),
                                    "port": p["metadata"].get("annotations", {}).get("bayport.io/port-id")}
            for p in listing["items"]}


@pytest.mark.kubectl
async def test_kubectl_and_bayport_pods_run_on_their_ports_and_the_cli_lists_them(stack: Stack,
                                                                                  tmp_path: Path) -> None:
    kubectl_binary()
    kubeconfig = tmp_path / "config"
    async with stack.client() as c:
        await networked_bay(stack, c)
        kubeconfig.write_text((await c.get("/v1/bays/testbay/config")).text)
    manifest = tmp_path / "web.yaml"
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: from-bayport\nspec:\n"
                        "  containers:\n  - name: c\n    image: nginx\n")
    docs = "\n---\n".join(f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: from-kubectl-{i}\nspec:\n"
                          f"  containers:\n  - name: c\n    image: nginx\n" for i in range(3))
    await asyncio.gather(kubectl(kubeconfig, "apply", "-f", "-", stdin=docs),
                         bayport(stack, "pod-create", "--manifest", str(manifest), "--bay", "testbay",
                                 "--wait"))
    for _ in range(100):
        pods = await _kubectl_pods(kubeconfig)
        if len(pods) == 4 and all(p["phase"] == "Running" for p in pods.values()):
            break
        await asyncio.sleep(0.05)
    assert sorted(pods) == ["from-bayport", "from-kubectl-0", "from-kubectl-1", "from-kubectl-2"]

    # Independent commands side by side: each one is a whole Python start-up.
    ports, (_, table, _), (_, networks, _), (_, subnets, _) = await asyncio.gather(
        bayport_json(stack, "port-list", "--bay", "testbay", "--namespace", "default"),
        bayport(stack, "port-list", "--bay", "testbay"),
        bayport(stack, "network-list", "--bay", "testbay"), bayport(stack, "subnet-list"))
    by_name = {p["name"]: p for p in ports}
    assert sorted(by_name) == sorted(pods)
    for name, seen in pods.items():
        assert seen["ip"] == by_name[name]["fixed_ips"][0]["ip_address"]
        assert seen["port"] == by_name[name]["id"]
        assert f"| {seen['ip']} " in table
    assert "| default-net " in networks and "| default " in networks
    async with stack.client() as c:
        bay_uuid = (await c.get("/v1/bays/testbay")).json()["uuid"]
    first = (await pool_subnets(stack, bay_uuid, 1))[0]
    assert f"| {first} " in subnets and f"| {first[1]} " in subnets

    await kubectl(kubeconfig, "delete", "pod", "from-kubectl-0", "--wait=false")
    async with stack.client() as c:
        rows = (await c.get("/v1/pods", params={"bay_ident": "testbay"})).json()["pods"]
        assert [(r["name"], r["pod_ip"]) for r in rows] == [("from-bayport", pods["from-bayport"]["ip"])]
        # The Bayport row shows its port and address.
        assert rows[0]["port_id"] == pods["from-bayport"]["port"]
        for _ in range(500):
            left = (await c.get("/v1/ports")).json()["ports"]
            if len(left) == 3:
                break
            await asyncio.sleep(0.01)
    assert sorted(p["name"] for p in left) == ["from-bayport", "from-kubectl-1", "from-kubectl-2"]


async def test_netd_runs_the_pod_network_alone(stack: Stack) -> None:
    async with stack.client() as c:
        bay = await networked_bay(stack, c)
    await controller(stack).stop()
    env = {**os.environ, "BAYPORT_DATA_DIR": str(stack.settings.data_dir),
           "BAYPORT_HEARTBEAT_INTERVAL": "0.2",
           "BAYPORT_LOG_LEVEL": "INFO"}
    netd = await asyncio.create_subprocess_exec(str(BIN / "bayport"), "netd", env=env,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        async with cluster(stack, bay["uuid"]) as k8s:
            await k8s.create(pod("served-by-netd"))
            running = await wait_pod(k8s, "served-by-netd", timeout=30)
        assert running.metadata is not None and running.status is not None
        async with stack.client() as c:
            listed = (await c.get("/v1/ports", params={"device_id": running.metadata.uid})).json()["ports"]
        assert [p["fixed_ips"][0]["ip_address"] for p in listed] == [running.status.podIP]
    finally:
        if netd.returncode is None:
            netd.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(netd.communicate(), 20)
    assert netd.returncode == 0, err.decode()
    assert "netd: pod-network controller running" in err.decode()
