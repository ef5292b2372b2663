"""Pods that really run, through the whole of Bayport (API, conductor, pod-network controller,
local driver) on the podman runtime: a busybox httpd answers at its pod IP — the port the network
controller allocated, bound by bayport-cni — from the host and from another pod; the seed's copy
job copies a claim's files into another claim; a job exiting 3 is Failed with exit code 3 and its
log is served; deleting the bay leaves no container, pod, namespace or bridge behind."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from bayport.jobs.template import DEFAULT_TEMPLATE
from tests.cluster.podman_support import IMAGE, eventually, http_text, leftovers, purge, require_podman
from tests.jobs.support import SEED_BODY, wait_job
from tests.kube.workload_helpers import wait_row
from tests.stack import Stack, kube_get

pytestmark = [pytest.mark.podman, pytest.mark.slow]

HTTPD = "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"


def pod_manifest(name: str, script: str, restart_policy: str = "Always") -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"restartPolicy": restart_policy, "containers": [
                           {"name": "main", "image": IMAGE, "imagePullPolicy": "Never",
                            "command": ["sh", "-c", script]}]}})


async def podman_bay(stack: Stack, client: httpx.AsyncClient, name: str, runtime: str) -> dict[str, Any]:
    await stack.baymodel(client, f"{name}-model", labels={"runtime": runtime})
    bay = await stack.bay(client, f"{name}-model", name=name, node_count=1)
    assert bay["status"] == "CREATE_COMPLETE", bay
    return bay


async def delete_bay(stack: Stack, client: httpx.AsyncClient, uuid: str) -> list[str]:
    """Delete the bay through the API; what it left on the machine (purged so the next test is clean)."""
    resp = await client.delete(f"/v1/bays/{uuid}")
    assert resp.status_code == 204, resp.text
    await stack.wait_bay(client, uuid, timeout=60, gone=True)
    left = leftovers(uuid)
    purge(uuid)
    return left


async def test_httpd_pod_answers_on_its_port_ip_and_the_bay_leaves_nothing(stack: Stack) -> None:
    await require_podman(bayport_network=True)
    async with stack.client() as c:
        bay = await podman_bay(stack, c, "webbay", runtime="auto")
        uuid = bay["uuid"]
        try:
            assert "runtime podman (auto: podman works on this machine)" in bay["status_reason"]
            kubeconfig = (await c.get(f"/v1/bays/{uuid}/config")).text
            nodes = (await kube_get(kubeconfig, "/api/v1/nodes")).json()["items"]
            assert {n["metadata"]["labels"]["bayport.io/runtime"] for n in nodes} == {"podman"}

            resp = await c.post("/v1/pods", json={"bay_uuid": uuid, "manifest": pod_manifest("web", HTTPD)})
            assert resp.status_code == 201, resp.text
            web = await wait_row(c, "pods", resp.json()["uuid"],
                                 lambda p: p["status"] == "Running" and p["pod_ip"] is not None, timeout=30)
            live = (await kube_get(kubeconfig, "/api/v1/namespaces/default/pods/web")).json()
            port = json.loads(live["metadata"]["annotations"]["kuryr.org/neutron-port"])
            assert web["pod_ip"] == port["fixed_ips"][0]["ip_address"] == live["status"]["podIP"]
            url = f"http://{web['pod_ip']}:8080/"
            assert await eventually(lambda: http_text(url), what="httpd from the host") == "hello-from-web\n"

            resp = await c.post("/v1/pods", json={"bay_uuid": uuid, "manifest": pod_manifest(
                "client", f"wget -qO- {url}", restart_policy="Never")})
            assert resp.status_code == 201, resp.text
            await wait_row(c, "pods", resp.json()["uuid"], lambda p: p["status"] == "Succeeded", timeout=30)
            log = await kube_get(kubeconfig, "/api/v1/namespaces/default/pods/client/log")
            assert log.text == "hello-from-web\n"
        finally:
            left = await delete_bay(stack, c, uuid)
        assert left == []


def podman_template(**spec: Any) -> dict[str, Any]:
    """The seed's template on the local busybox; finished Jobs kept a while so logs stay readable."""
    template = copy.deepcopy(DEFAULT_TEMPLATE)
    template["spec"].update(spec)
    container = template["spec"]["template"]["spec"]["containers"][0]
    container["image"], container["imagePullPolicy"] = IMAGE, "IfNotPresent"
    return template


async def test_seed_copy_job_copies_and_a_failing_job_reports_exit_3(stack: Stack) -> None:
    await require_podman(bayport_network=True)
    async with stack.client() as c:
        bay = await podman_bay(stack, c, "jobbay", runtime="podman")
        uuid = bay["uuid"]
        try:
            resp = await c.post("/v1/tenants", json={"name": "exam", "bay": uuid})
            assert resp.status_code == 201, resp.text
            tenant = resp.json()
            put = await c.put(f"/v1/tenants/{tenant['id']}/template",
                              json=podman_template(ttlSecondsAfterFinished=600, backoffLimit=0))
            assert put.status_code == 200, put.text
            for claim in ("gluster-exam", "nfs-exam"):
                vol = await c.post(f"/v1/tenants/{tenant['id']}/volumes", json={"name": claim, "size": "1Gi"})
                assert vol.status_code == 201, vol.text
            claims = Path(stack.settings.data_dir) / "bays" / uuid / "pv" / tenant["namespace"]
            source, dest = claims / "nfs-exam", claims / "gluster-exam"
            await eventually(_exists(source), what="the source claim's directory")
            (source / "exam.txt").write_text("answers\n")
            (source / "notes").mkdir()
            (source / "notes" / "n1.txt").write_text("note one\n")

            resp = await c.post("/v1/jobs", json={"tenant": tenant["id"], **SEED_BODY})
            assert resp.status_code in (200, 201), resp.text
            copied = await wait_job(c, resp.json()["uuid"], timeout=60)
            assert copied["status"] == "Succeeded", copied
            assert copied["exit_code"] == 0
            assert (dest / "exam.txt").read_text() == "answers\n"
            assert (dest / "notes" / "n1.txt").read_text() == "note one\n"

            resp = await c.post("/v1/jobs", json={"tenant": tenant["id"], "cmd": "echo giving up; exit 3"})
            assert resp.status_code in (200, 201), resp.text
            failed = await wait_job(c, resp.json()["uuid"], timeout=60)
            assert failed["status"] == "Failed" and failed["exit_code"] == 3, failed
            logs = await c.get(f"/v1/jobs/{failed['uuid']}/logs")
            assert logs.status_code == 200 and logs.text == "giving up\n", logs.text
        finally:
            left = await delete_bay(stack, c, uuid)
        assert left == []


def _exists(path: Path) -> Any:
    async def check() -> bool:
        return path.is_dir()
    return check
