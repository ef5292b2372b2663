"""Roles inside a bay, for the product as shipped: ``bayport serve`` as a subprocess, tokens from
``bayport token-create``, kubeconfigs from ``bayport bay-config``, and the real kubectl. A
project reader's kubeconfig lists pods and cannot create or delete one; a member's cannot give a
pod an address of its choosing (another pod's, a Service's, 127.0.0.1), while its plain pods get
their IPAM port. The server's database and the bay's tokens are readable by their owner only."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_workloads_cli import kubectl_binary
from tests.product.served import BAYPORT, Served, served

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]

POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}{annotations}
spec:
  containers: [{{name: c, image: nginx}}]
"""


async def as_user(server: Served, token: str, *args: str) -> str:
    """``bayport <args>`` run with another user's token."""
    proc = await asyncio.create_subprocess_exec(
        BAYPORT, *args, env={**server.env, "BAYPORT_TOKEN": token},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, f"bayport {' '.join(args)}: {out.decode()}{err.decode()}"
    return out.decode()


async def kubectl(kubeconfig: Path, *args: str, ok: bool = True) -> str:
    done = await asyncio.to_thread(subprocess.run, [kubectl_binary(), "--kubeconfig", str(kubeconfig),
                                                    *args], capture_output=True, timeout=60)
    text = done.stdout.decode() + done.stderr.decode()
    assert (done.returncode == 0) == ok, f"kubectl {' '.join(args)} exited {done.returncode}: {text}"
    return text


def forged(ip: str) -> str:
    port = json.dumps({"id": "x", "mac_address": "fa:16:3e:01:02:03",
                       "fixed_ips": [{"subnet_id": "x", "ip_address": ip}]})
    return f"\n  annotations:\n    kuryr.org/neutron-port: '{port}'"


async def wait_running(kubeconfig: Path, name: str, timeout: float = 30.0) -> dict[str, str]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = json.loads(await kubectl(kubeconfig, "get", "pod", name, "-o", "json"))["status"]
        if status.get("phase") == "Running" and status.get("podIP"):
            return dict(status)
        assert asyncio.get_running_loop().time() < deadline, f"pod {name} not Running: {status}"
        await asyncio.sleep(0.2)


@pytest.mark.timeout(240)
async def test_reader_kubeconfig_reads_only_and_members_cannot_choose_addresses(tmp_path: Path) -> None:
    kubectl_binary()
    async with served(tmp_path / "data") as server:
        member = (await server.cli("token-create", "--project", "X", "--user", "m", "--role",
                                   "member")).strip()
        reader = (await server.cli("token-create", "--project", "X", "--user", "r", "--role",
                                   "reader")).strip()
        await as_user(server, member, "baymodel-create", "--name", "sim", "--image-id", "fedora-atomic",
                      "--keypair-id", "default", "--external-network-id", "public",
                      "--labels", "runtime=simulated")
        await as_user(server, member, "bay-create", "--name", "tb", "--baymodel", "sim",
                      "--node-count", "1", "--wait")
        member_cfg, reader_cfg = tmp_path / "member.kubeconfig", tmp_path / "reader.kubeconfig"
        await as_user(server, member, "bay-config", "tb", "-o", str(member_cfg))
        await as_user(server, reader, "bay-config", "tb", "-o", str(reader_cfg))

        (tmp_path / "web.yaml").write_text(POD.format(name="web", annotations=""))
        await kubectl(member_cfg, "create", "-f", str(tmp_path / "web.yaml"))
        web = await wait_running(member_cfg, "web")
        meta = json.loads(await kubectl(member_cfg, "get", "pod", "web", "-o", "json"))["metadata"]
        port = json.loads(meta["annotations"]["kuryr.org/neutron-port"])
        assert port["device_id"] == meta["uid"] and port["fixed_ips"][0]["ip_address"] == web["podIP"]
        assert ipaddress.ip_address(web["podIP"]) in ipaddress.ip_network("10.128.0.0/9")

        # The reader: get works, every write is Forbidden and changes nothing.
        assert "web" in await kubectl(reader_cfg, "get", "pods")
        (tmp_path / "mine.yaml").write_text(POD.format(name="mine", annotations=""))
        created = await kubectl(reader_cfg, "create", "-f", str(tmp_path / "mine.yaml"), ok=False)
        assert ('pods is forbidden: User "bayport:reader" cannot create resource "pods" in API group "" '
                'in the namespace "default"') in created
        deleted = await kubectl(reader_cfg, "delete", "pod", "web", "--wait=false", ok=False)
        assert 'User "bayport:reader" cannot delete resource "pods"' in deleted
        assert "Forbidden" in await kubectl(reader_cfg, "label", "pod", "web", "x=y", ok=False)
        names = json.loads(await kubectl(member_cfg, "get", "pods", "-o", "json"))["items"]
        assert [p["metadata"]["name"] for p in names] == ["web"]

        # The member: no address of its choosing, through kubectl or through Bayport.
        service_ip = json.loads(await kubectl(member_cfg, "get", "svc", "kubernetes", "-o",
                                              "json"))["spec"]["clusterIP"]
        for i, ip in enumerate((web["podIP"], service_ip, "127.0.0.1")):
            path = tmp_path / f"thief-{i}.yaml"
            path.write_text(POD.format(name=f"thief-{i}", annotations=forged(ip)))
            refused = await kubectl(member_cfg, "create", "-f", str(path), ok=False)
            assert f'The Pod "thief-{i}" is invalid' in refused
            assert "kuryr.org/neutron-port" in refused
            proc = await asyncio.create_subprocess_exec(
                BAYPORT, "pod-create", "--manifest", str(path), "--bay", "tb",
                env={**server.env, "BAYPORT_TOKEN": member},
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            out, _ = await proc.communicate()
            assert proc.returncode != 0 and b"pod-network controller" in out, out.decode()
        names = json.loads(await kubectl(member_cfg, "get", "pods", "-o", "json"))["items"]
        assert [p["metadata"]["name"] for p in names] == ["web"]

        data = server.data_dir
        bay = json.loads(await as_user(server, member, "bay-show", "tb", "--format", "json"))
        secrets = [data / "bayport.db", data / "admin-token",
                   *(data / "bays" / bay["uuid"] / f for f in ("token", "reader-token", "network-token"))]
        for path in secrets:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
