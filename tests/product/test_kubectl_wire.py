"""The wire of kubectl 1.37 and the official ``kubernetes`` Python client against an embedded bay
of the product as shipped (``bayport serve`` as a subprocess, the kubeconfig from
``bayport bay-config``): kubectl's typed commands send protobuf bodies and read protobuf answers
(``create namespace``, ``create job``, ``drain``), ``kubectl wait`` finishes on the watch-list
BOOKMARK, ``logs --timestamps`` stamps every line, ``/version/`` answers, and a malformed
protobuf body is a 400 that says so."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.test_workloads_cli import kubectl_binary
from tests.product.served import served

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]

PROTO = "application/vnd.kubernetes.protobuf"
STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z \S")


async def kubectl(kubeconfig: Path, *args: str, ok: bool = True, timeout: float = 90) -> str:
    done = await asyncio.to_thread(subprocess.run, [kubectl_binary(), "--kubeconfig", str(kubeconfig), *args],
                                   capture_output=True, timeout=timeout)
    text = done.stdout.decode() + done.stderr.decode()
    assert (done.returncode == 0) == ok, f"kubectl {' '.join(args)} exited {done.returncode}: {text}"
    return text


def bay_client(kubeconfig: Path) -> httpx.AsyncClient:
    config = yaml.safe_load(kubeconfig.read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    with tempfile.NamedTemporaryFile("wb", suffix=".crt") as ca:
        ca.write(base64.b64decode(cluster["certificate-authority-data"]))
        ca.flush()
        context = ssl.create_default_context(cafile=ca.name)
    return httpx.AsyncClient(base_url=cluster["server"], verify=context, timeout=30,
                             headers={"Authorization": f"Bearer {user['token']}"})


def official_client_session(kubeconfig: Path) -> dict[str, Any]:
    """What a user of the official client does (synchronous: run in a thread)."""
    from kubernetes import client, config, watch

    api = config.new_client_from_config(config_file=str(kubeconfig))
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py")))
        job = client.V1Job(metadata=client.V1ObjectMeta(name="pyjob"), spec=client.V1JobSpec(
            backoff_limit=0, template=client.V1PodTemplateSpec(spec=client.V1PodSpec(
                restart_policy="Never", containers=[client.V1Container(name="c", image="busybox",
                                                                       command=["true"])]))))
        batch.create_namespaced_job("py", job)
        seen: list[str] = []
        phase = ""
        for event in watch.Watch().stream(core.list_namespaced_pod, "py", timeout_seconds=60,
                                          allow_watch_bookmarks=True):
            seen.append(event["type"])
            phase = event["object"].status.phase or ""
            if phase == "Succeeded":
                break
        pod = core.list_namespaced_pod("py").items[0]
        logs = core.read_namespaced_pod_log(pod.metadata.name, "py", timestamps=True)
        batch.delete_namespaced_job("pyjob", "py",
                                    body=client.V1DeleteOptions(propagation_policy="Background"))
        remaining = [j.metadata.name for j in batch.list_namespaced_job("py").items]
        core.delete_namespace("py")
        version = client.VersionApi(api).get_code().git_version
    finally:
        api.close()
    return {"seen": seen, "phase": phase, "logs": logs, "remaining": remaining, "version": version}


@pytest.mark.timeout(360)
async def test_kubectl_and_the_official_client_speak_the_wire(tmp_path: Path) -> None:
    kubectl_binary()
    async with served(tmp_path / "data") as server:
        await server.cli("baymodel-create", "--name", "sim", "--image-id", "fedora-atomic", "--keypair-id",
                         "default", "--external-network-id", "public", "--labels", "runtime=simulated")
        await server.cli("bay-create", "--name", "wb", "--baymodel", "sim", "--node-count", "1", "--wait")
        kc = tmp_path / "wb.kubeconfig"
        await server.cli("bay-config", "wb", "-o", str(kc))

        # Typed commands: protobuf request, protobuf answer, both understood.
        verbose = await kubectl(kc, "create", "namespace", "wire", "-v=8")
        # Request and response headers both say protobuf.
        assert verbose.count(f"Content-Type: {PROTO}") >= 2 and 'status="201 Created"' in verbose, verbose
        assert verbose.startswith("namespace/wire created")
        assert "Active" in await kubectl(kc, "get", "namespace", "wire")
        again = await kubectl(kc, "create", "namespace", "wire", ok=False)      # a protobuf Status
        assert 'Error from server (AlreadyExists): namespaces "wire" already exists' in again, again
        out = await kubectl(kc, "-n", "wire", "create", "job", "j1", "--image=busybox", "--", "true")
        assert "job.batch/j1 created" in out
        job = yaml.safe_load(await kubectl(kc, "-n", "wire", "get", "job", "j1", "-o", "yaml"))
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert (job["kind"], container["image"], container["command"]) == ("Job", "busybox", ["true"])
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"

        # kubectl wait: watch-list with sendInitialEvents, ended by the initial-events-end BOOKMARK.
        await kubectl(kc, "-n", "wire", "run", "web", "--image=nginx", "--labels=app=web")
        waited = await kubectl(kc, "-n", "wire", "wait", "--for=condition=Ready", "pod/web", "--timeout=60s")
        assert "pod/web condition met" in waited
        waited = await kubectl(kc, "-n", "wire", "wait", "--for=jsonpath={.status.phase}=Running", "pod/web",
                               "--timeout=60s")
        assert "pod/web condition met" in waited
        assert "condition met" in await kubectl(kc, "-n", "wire", "wait", "--for=condition=Complete",
                                                "job/j1", "--timeout=90s")

        # logs --timestamps: an RFC 3339 timestamp with nanoseconds before every line.
        for target in ("pod/web", "job/j1"):
            lines = (await kubectl(kc, "-n", "wire", "logs", "--timestamps", target)).splitlines()
            assert lines and all(STAMPED.match(line) for line in lines), lines
        plain = (await kubectl(kc, "-n", "wire", "logs", "pod/web")).splitlines()
        assert plain and not any(STAMPED.match(line) for line in plain)

        # drain-style: cordon (PATCH), list the node's pods (protobuf PodList), delete, uncordon.
        web = json.loads(await kubectl(kc, "-n", "wire", "get", "pod", "web", "-o", "json"))
        node = web["spec"]["nodeName"]
        drained = await kubectl(kc, "drain", node, "--disable-eviction", "--force", "--ignore-daemonsets",
                                "--pod-selector=app=web", "--timeout=60s")
        assert f"node/{node} drained" in drained and "pod/web deleted" in drained, drained
        assert "SchedulingDisabled" in await kubectl(kc, "get", "node", node)
        await kubectl(kc, "uncordon", node)
        assert "No resources found" in await kubectl(kc, "-n", "wire", "get", "pods", "-l", "app=web")

        assert "job.batch \"j1\" deleted" in await kubectl(kc, "-n", "wire", "delete", "job", "j1")
        assert "namespace \"wire\" deleted" in await kubectl(kc, "delete", "namespace", "wire")
        assert json.loads(await kubectl(kc, "get", "--raw", "/version/"))["major"] == "1"

        async with bay_client(kc) as bay:
            bad = await bay.post("/api/v1/namespaces", content=b"k8s\x00\x0a\x02\x0a", headers={
                "Content-Type": PROTO})
            assert bad.status_code == 400
            assert bad.json()["message"].startswith("error decoding the protobuf request body")

        result = await asyncio.to_thread(official_client_session, kc)
        assert result["phase"] == "Succeeded" and "ADDED" in result["seen"], result
        assert result["logs"] and all(STAMPED.match(line) for line in result["logs"].splitlines()), result
        assert result["remaining"] == [] and result["version"].startswith("v1.")
