"""Pod networking on the podman runtime: a busybox httpd answers at status.podIP from the host and
from another pod, with the node's own addresses (standard bridge plugin) and with Bayport's pod
network, where bayport-cni binds exactly the IP and MAC of the port annotated on the pod (written
here through the cluster's HTTP API, as the network controller does)."""

from __future__ import annotations

import json
import random
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from bayport.cluster.runtime.podman_cluster import announce_api_server
from tests.cluster.podman_support import (
    PodmanCluster,
    eventually,
    http_text,
    pod_body,
    podman_cluster,
    require_podman,
    sh,
)

pytestmark = pytest.mark.podman

HTTPD = "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"


async def _answers_from_host_and_pod(pc: PodmanCluster, ip: str) -> None:
    body = await eventually(lambda: http_text(f"http://{ip}:8080/"), what=f"httpd at {ip}:8080 from the host")
    assert body == "hello-from-web\n"
    pc.create(pod_body("client", sh("main", f"wget -qO- http://{ip}:8080/"), restart_policy="Never"))
    await pc.phase("client", "Succeeded")
    assert "hello-from-web" in await pc.logs("client")


async def test_httpd_answers_on_its_node_assigned_pod_ip(tmp_path: Path) -> None:
    await require_podman()
    async with podman_cluster(tmp_path) as pc:
        pc.create(pod_body("web", sh("main", HTTPD, ports=[{"containerPort": 8080}])))
        pod = await pc.phase("web", "Running")
        await _answers_from_host_and_pod(pc, pod["status"]["podIP"])


def _random_mac() -> str:
    return "fa:16:3e:" + ":".join(f"{random.randrange(256):02x}" for _ in range(3))


def _port_annotations(pod_uid: str, subnet: dict[str, object], ip: str, mac: str) -> dict[str, str]:
    """What the network controller writes on a pod: its Neutron-shaped port and subnet."""
    port = {"id": str(uuid.uuid4()), "mac_address": mac, "device_id": pod_uid,
            "device_owner": "compute:kuryr", "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": ip}]}
    return {"kuryr.org/neutron-port": json.dumps(port), "kuryr.org/neutron-subnet": json.dumps(subnet),
            "bayport.io/port-id": str(port["id"])}


async def test_bayport_cni_binds_the_annotated_ip_and_mac(tmp_path: Path) -> None:
    await require_podman(bayport_network=True)
    async with podman_cluster(tmp_path, wait_for_port_annotation=True, port_wait_seconds=20.0,
                              network_token=uuid.uuid4().hex) as pc:
        announce_api_server(pc.uid, pc.cluster.url)
        net = f"10.199.{random.randrange(1, 250)}"     # apart from the 10.100.x other test clusters use
        subnet = {"id": str(uuid.uuid4()), "cidr": f"{net}.0/24", "gateway_ip": f"{net}.1",
                  "dns_nameservers": []}
        wanted = {"web": (f"{net}.7", _random_mac()), "client": (f"{net}.8", _random_mac())}
        pods = "/api/v1/namespaces/default/pods"
        headers = {"Authorization": f"Bearer {pc.cluster.spec.token}"}
        # The annotations are written as the network controller writes them: with its own token.
        network = {"Authorization": f"Bearer {pc.cluster.spec.network_token}",
                   "Content-Type": "application/merge-patch+json"}
        async with httpx.AsyncClient(base_url=pc.cluster.url, headers=headers, timeout=10) as api:
            for name, script in (("web", HTTPD), ("client", "sleep 3600")):
                resp = await api.post(pods, json=pod_body(name, sh("main", script)))
                assert resp.status_code == 201, resp.text
                annotations = _port_annotations(resp.json()["metadata"]["uid"], subnet, *wanted[name])
                resp = await api.patch(f"{pods}/{name}", json={"metadata": {"annotations": annotations}},
                                       headers=network)
                assert resp.status_code == 200, resp.text

        web = await pc.phase("web", "Running")
        client = await pc.phase("client", "Running")
        ip, mac = wanted["web"]
        assert web["status"]["podIP"] == ip and client["status"]["podIP"] == wanted["client"][0]
        link = subprocess.run(["ip", "-n", pc.sandbox_of("web"), "-j", "link", "show", "eth0"],
                              capture_output=True, text=True, check=True)
        assert json.loads(link.stdout)[0]["address"] == mac
        body = await eventually(lambda: http_text(f"http://{ip}:8080/"), what="httpd from the host")
        assert body == "hello-from-web\n"
        client_id = client["status"]["containerStatuses"][0]["containerID"].removeprefix("podman://")
        fetched = subprocess.run(["podman", "exec", client_id, "wget", "-qO-", f"http://{ip}:8080/"],
                                 capture_output=True, text=True, timeout=30)
        assert fetched.stdout == "hello-from-web\n", fetched.stderr
