"""The real kubectl (1.37, from the venv) against an embedded cluster, with validation on.

Each test starts its own cluster (about 20 ms) and writes the kubeconfig ``EmbeddedCluster``
hands out (the HTTPS listener: kubectl sends bearer tokens only over TLS) to tmp_path.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bayport.cluster.host import ClusterSpec, EmbeddedCluster
from bayport.cluster.tls import serving_identity
from tests.cluster.apiserver_helpers import kubectl_binary, run_kubectl
from tests.conftest import require

pytestmark = pytest.mark.kubectl

MANIFESTS = """
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: nginx
    image: nginx:1.25
    ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
---
apiVersion: v1
kind: ReplicationController
metadata: {name: front}
spec:
  replicas: 2
  selector: {app: front}
  template:
    metadata: {labels: {app: front}}
    spec:
      containers: [{name: c, image: "busybox:1.36", command: [sleep, "3600"]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: "busybox:1.36", command: [echo, hi]}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"""


class Kubectl:
    def __init__(self, binary: str, kubeconfig: Path, cluster: EmbeddedCluster) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.cluster = cluster

    async def __call__(self, *args: str, ok: bool = True, stdin: str | None = None) -> str:
        code, out = await run_kubectl(self.binary, self.kubeconfig, *args,
                                      stdin=stdin.encode() if stdin is not None else None)
        if ok:
            assert code == 0, f"kubectl {' '.join(args)} failed ({code}):\n{out}"
        else:
            assert code != 0, f"kubectl {' '.join(args)} unexpectedly succeeded:\n{out}"
        return out


@pytest.fixture
async def kubectl(tmp_path: Path) -> AsyncIterator[Kubectl]:
    binary = kubectl_binary()
    require(binary is not None, "kubectl binary not found")
    require(serving_identity() is not None, "openssl (for the TLS listener kubectl needs) not found")
    assert binary is not None
    cluster = EmbeddedCluster(ClusterSpec(name="kc", uid="u-1", token="s3cret", node_count=2))
    await cluster.start()
    config = tmp_path / "kubeconfig"
    config.write_text(cluster.kubeconfig())
    (tmp_path / "all.yaml").write_text(MANIFESTS)
    try:
        yield Kubectl(binary, config, cluster)
    finally:
        await cluster.stop()


def rows(output: str) -> list[list[str]]:
    return [line.split() for line in output.strip().splitlines()]


async def eventually(check: Callable[[], Awaitable[None]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    last: AssertionError | None = None
    while time.monotonic() < deadline:
        try:
            await check()
            return
        except AssertionError as exc:
            last = exc
            await asyncio.sleep(0.2)
    raise AssertionError(f"not reached in {timeout} s: {last}")


async def test_version_nodes_and_namespaces(kubectl: Kubectl) -> None:
    out = await kubectl("version")
    assert "Server Version: v1.31.0" in out
    nodes = rows(await kubectl("get", "nodes"))
    assert nodes[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert nodes[1][:3] == ["kc-master-0", "Ready", "control-plane"]
    assert nodes[2][:3] == ["kc-node-0", "Ready", "<none>"]
    namespaces = rows(await kubectl("get", "namespaces"))
    assert namespaces[0] == ["NAME", "STATUS", "AGE"]
    assert namespaces[1][:2] == ["default", "Active"]
    assert {r[0] for r in namespaces[1:]} == {"default", "kube-system", "kube-public", "kube-node-lease"}
    wide = rows(await kubectl("get", "nodes", "-o", "wide"))
    assert wide[0][5] == "INTERNAL-IP" and wide[1][5] == "10.0.0.10"


async def test_create_get_describe_delete(kubectl: Kubectl, tmp_path: Path) -> None:
    out = await kubectl("create", "-f", str(tmp_path / "all.yaml"))
    for line in ("pod/web created", "service/web created", "replicationcontroller/front created",
                 "job.batch/once created", "persistentvolumeclaim/data created"):
        assert line in out

    async def web_running() -> None:
        pods = {r[0]: r for r in rows(await kubectl("get", "pods"))}
        assert pods["NAME"] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        assert pods["web"][1:3] == ["1/1", "Running"]

    await eventually(web_running)
    out = await kubectl("get", "svc,rc,jobs")
    assert "service/web" in out and "ClusterIP" in out and "80/TCP" in out
    assert "replicationcontroller/front" in out and "job.batch/once" in out
    assert "TYPE" in out and "DESIRED" in out and "COMPLETIONS" in out
    described = await kubectl("describe", "pod", "web")
    assert "Name:             web" in described and "Status:           Running" in described
    assert "nginx:1.25" in described and "Scheduled" in described
    out = await kubectl("delete", "pod", "web")
    assert 'pod "web" deleted' in out
    assert "No resources found" in await kubectl("get", "pods", "--field-selector", "metadata.name=web")
    await kubectl("delete", "rc", "front")
    assert kubectl.cluster.store.count("replicationcontrollers") == 0


async def test_apply_creates_then_configures(kubectl: Kubectl, tmp_path: Path) -> None:
    out = await kubectl("apply", "-f", str(tmp_path / "all.yaml"))
    assert "pod/web created" in out and "job.batch/once created" in out
    out = await kubectl("apply", "-f", str(tmp_path / "all.yaml"))
    assert "pod/web unchanged" in out and "service/web unchanged" in out
    changed = MANIFESTS.replace("replicas: 2", "replicas: 3").replace("nginx:1.25", "nginx:1.26")
    (tmp_path / "changed.yaml").write_text(changed)
    out = await kubectl("apply", "-f", str(tmp_path / "changed.yaml"))
    assert "pod/web configured" in out and "replicationcontroller/front configured" in out
    store = kubectl.cluster.store
    assert store.get("replicationcontrollers", "default", "front")["spec"]["replicas"] == 3
    pod = store.get("pods", "default", "web")
    assert [c["image"] for c in pod["spec"]["containers"]] == ["nginx:1.26"]
    assert pod["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]


async def test_validation_rejects_unknown_fields_and_invalid_objects(kubectl: Kubectl) -> None:
    typo = MANIFESTS.split("---", maxsplit=1)[0].replace("image: nginx", "imag: nginx")
    out = await kubectl("create", "-f", "-", stdin=typo, ok=False)
    assert 'unknown field "spec.containers[0].imag"' in out
    missing = MANIFESTS.split("---", maxsplit=1)[0].replace("    image: nginx:1.25\n", "")
    out = await kubectl("create", "-f", "-", stdin=missing, ok=False)
    assert "spec.containers[0].image: Required value" in out


async def test_scale_rc_and_logs(kubectl: Kubectl, tmp_path: Path) -> None:
    await kubectl("apply", "-f", str(tmp_path / "all.yaml"))
    out = await kubectl("scale", "rc", "front", "--replicas=3")
    assert "replicationcontroller/front scaled" in out

    async def three_ready() -> None:
        rc = rows(await kubectl("get", "rc", "front"))
        assert rc[1][1:4] == ["3", "3", "3"]

    await eventually(three_ready)
    pods = rows(await kubectl("get", "pods", "-l", "app=front", "-o", "wide"))
    assert len(pods) == 4 and pods[0][5:7] == ["IP", "NODE"]
    logs = await kubectl("logs", pods[1][0])
    assert f"pod default/{pods[1][0]}" in logs
    out = await kubectl("logs", "web", "-c", "nope", ok=False)
    assert "container nope is not valid" in out


async def test_get_watch_streams_table_rows(kubectl: Kubectl) -> None:
    def pod(name: str) -> dict[str, object]:
        return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}

    kubectl.cluster.store.create("pods", pod("first"))
    env = {**os.environ, "KUBECONFIG": str(kubectl.kubeconfig),
           "KUBECACHEDIR": str(kubectl.kubeconfig.parent / "kube-cache")}
    proc = await asyncio.create_subprocess_exec(kubectl.binary, "get", "pods", "-w", env=env,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    try:
        header = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().split()
        assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        assert (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().split()[0] == "first"
        kubectl.cluster.store.create("pods", pod("watched"))
        seen: list[list[str]] = []
        while not any(r[0] == "watched" and r[2] == "Running" for r in seen):
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert line, "kubectl get -w ended early"
            seen.append(line.decode().split())
        assert all(r[0] in ("first", "watched") for r in seen), seen
    finally:
        proc.kill()
        await proc.wait()


async def test_server_side_apply_and_namespace_deletion(kubectl: Kubectl) -> None:
    manifest = """
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: Pod
metadata: {name: ssa, namespace: team, labels: {app: ssa}}
spec:
  containers: [{name: c, image: "nginx:1.25"}]
"""
    out = await kubectl("apply", "--server-side", "-f", "-", stdin=manifest)
    assert "namespace/team serverside-applied" in out and "pod/ssa serverside-applied" in out
    out = await kubectl("apply", "--server-side", "-f", "-", stdin=manifest.replace("app: ssa", "app: v2"))
    assert "pod/ssa serverside-applied" in out
    assert kubectl.cluster.store.get("pods", "team", "ssa")["metadata"]["labels"] == {"app": "v2"}
    out = await kubectl("delete", "namespace", "team", "--timeout=20s")
    assert 'namespace "team" deleted' in out
    assert not kubectl.cluster.store.exists("namespaces", None, "team")
    assert kubectl.cluster.store.count("pods", "team") == 0
