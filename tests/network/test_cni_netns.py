"""``bayport-cni`` end to end in real network namespaces (root only).

Two pods get ports from the real IPAM (SQLite), their annotations are served by a
Kubernetes-API-shaped HTTP server, the real executable binds each namespace, and the
pods ping each other and their gateway through the host bridge; CHECK passes and
fails where it should; DEL is idempotent, also once the namespace is gone.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bayport.network import ipam
from bayport.network.cni.plumbing import host_ifname
from bayport.network.cni.spec import Code
from tests.conftest import require
from tests.network.cni_support import cni_env, run_cni, write_kubeconfig
from tests.network.fake_kube_api import FakeKubeAPI, serve
from tests.network.ipam_support import ipam_engine, sessions

pytestmark = pytest.mark.root

TOKEN = "netns-test-token"
REPO = Path(__file__).resolve().parents[2]
BAY = "9b2f7c1e-5d4a-4f0e-8c3b-2a1d0e9f8a7b"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=10)


def netns_usable() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"bpt-probe-{secrets.token_hex(3)}"
    if ip("netns", "add", probe, check=False).returncode != 0:
        return False
    ip("netns", "del", probe, check=False)
    return True


@dataclass
class Sandbox:
    namespaces: list[str]
    bridge: str

    def path(self, namespace: str) -> str:
        return f"/var/run/netns/{namespace}"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    require(netns_usable(), "needs root and `ip netns`")
    suffix = secrets.token_hex(4)
    box = Sandbox(namespaces=[f"bpt-{suffix}-a", f"bpt-{suffix}-b"], bridge=f"bpb{suffix}")
    try:
        for namespace in box.namespaces:
            ip("netns", "add", namespace)
        yield box
    finally:
        for namespace in box.namespaces:
            ip("netns", "del", namespace, check=False)
            ip("link", "del", host_ifname(namespace, "eth0"), check=False)
        ip("link", "del", box.bridge, check=False)


@pytest.fixture
async def api() -> AsyncIterator[FakeKubeAPI]:
    async with serve(FakeKubeAPI(TOKEN)) as running:
        yield running


def free_test_subnet() -> str:
    """A random 10.2xx.y.0/24 that no address on this host already uses."""
    used = ip("-o", "-4", "addr", "show").stdout
    while True:
        prefix = f"10.{random.randint(200, 250)}.{random.randint(0, 255)}."
        if prefix not in used:
            return prefix + "0/24"


def interface_facts(namespace: str) -> tuple[list[str], str]:
    addresses = ip("-n", namespace, "-o", "-4", "addr", "show", "dev", "eth0").stdout.splitlines()
    link = ip("-n", namespace, "-o", "link", "show", "dev", "eth0").stdout
    return [line.split()[3] for line in addresses], link


async def ping(namespace: str, destination: str) -> bool:
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", namespace, sys.executable, "-m", "tests.network.icmp_ping", destination,
        cwd=REPO)
    return await asyncio.wait_for(proc.wait(), 10) == 0


async def test_two_pods_bound_through_a_bridge(sandbox: Sandbox, api: FakeKubeAPI,
                                               tmp_path: Path) -> None:
    pool = free_test_subnet()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api.url, TOKEN)
    conf: dict[str, Any] = {"cniVersion": "1.0.0", "name": "bayport", "type": "bayport-cni",
                            "kubeconfig": str(kubeconfig), "bridge": sandbox.bridge,
                            "isGateway": True, "portWaitSeconds": 20}
    async with ipam_engine(f"sqlite+aiosqlite:///{tmp_path / 'ipam.db'}", create=True) as engine:
        uids = {name: api.add_pod("default", name) for name in ("pod-a", "pod-b")}
        ports, values = {}, {}
        async with sessions(engine)() as session, session.begin():
            for name, uid in uids.items():
                port = await ipam.create_port(session, bay_uuid=BAY, project_id="p", namespace="default",
                                              name=name, device_id=uid, pod_pool=pool)
                subnet = await ipam.get_subnet(session, port.subnet_id)
                ports[name], values[name] = port, ipam.pod_annotations(port, subnet)
    api.annotate("default", "pod-a", values["pod-a"])
    ns_a, ns_b = sandbox.namespaces
    env_a = cni_env(ns_a, sandbox.path(ns_a), "default", "pod-a", pod_uid=uids["pod-a"])
    env_b = cni_env(ns_b, sandbox.path(ns_b), "default", "pod-b", pod_uid=uids["pod-b"])

    async def controller_annotates_b_late() -> None:
        await asyncio.sleep(0.5)
        api.annotate("default", "pod-b", values["pod-b"])

    late = asyncio.create_task(controller_annotates_b_late())
    added_a, added_b = await asyncio.gather(run_cni("ADD", conf, env=env_a), run_cni("ADD", conf, env=env_b))
    await late

    gateway = str(subnet.gateway_ip)
    for name, namespace, added in (("pod-a", ns_a, added_a), ("pod-b", ns_b, added_b)):
        port = ports[name]
        assert added.returncode == 0, (added.document, added.stderr)
        result = added.document
        assert result is not None and result["cniVersion"] == "1.0.0"
        (ip_entry,) = result["ips"]
        assert ip_entry == {"address": f"{port.ip_address}/24", "gateway": gateway,
                            "interface": ip_entry["interface"]}
        assert result["interfaces"][ip_entry["interface"]] == {
            "name": "eth0", "mac": port.mac_address, "sandbox": sandbox.path(namespace)}
        assert {"name": sandbox.bridge} .items() <= result["interfaces"][0].items()
        assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": gateway}]
        addresses, link = interface_facts(namespace)
        assert addresses == [f"{port.ip_address}/24"]
        assert f"link/ether {port.mac_address} " in link and "UP" in link

    assert await ping(ns_a, ports["pod-b"].ip_address)
    assert await ping(ns_b, ports["pod-a"].ip_address)
    assert await ping(ns_a, gateway)

    checked = await run_cni("CHECK", {**conf, "prevResult": added_a.document}, env=env_a)
    assert checked.returncode == 0, checked.document
    from_annotation = await run_cni("CHECK", conf, env=env_b)
    assert from_annotation.returncode == 0, from_annotation.document
    wrong = await run_cni("CHECK", {**conf, "prevResult": added_b.document},
                          env={**env_a, "CNI_ARGS": ""})
    assert wrong.returncode != 0
    assert wrong.document is not None and wrong.document["code"] == Code.CHECK_FAILED

    for _ in range(2):
        deleted = await run_cni("DEL", conf, env=env_a)
        assert (deleted.returncode, deleted.document) == (0, None), deleted.document
    assert ip("-n", ns_a, "link", "show", "eth0", check=False).returncode != 0
    assert ip("link", "show", host_ifname(ns_a, "eth0"), check=False).returncode != 0

    ip("netns", "del", ns_b)
    for _ in range(2):
        deleted = await run_cni("DEL", conf, env=env_b)
        assert deleted.returncode == 0, deleted.document
    assert ip("link", "show", host_ifname(ns_b, "eth0"), check=False).returncode != 0


async def test_add_is_retryable_after_a_half_done_attempt(sandbox: Sandbox, api: FakeKubeAPI) -> None:
    port_doc = ('{"id": "p1", "mac_address": "fa:16:3e:00:00:01", "device_id": "",'
                ' "fixed_ips": [{"subnet_id": "s1", "ip_address": "10.201.7.9"}]}')
    subnet_doc = '{"id": "s1", "cidr": "10.201.7.0/24", "gateway_ip": "10.201.7.1"}'
    api.add_pod("default", "web", {"kuryr.org/neutron-port": port_doc,
                                   "kuryr.org/neutron-subnet": subnet_doc})
    namespace = sandbox.namespaces[0]
    conf = {"cniVersion": "0.4.0", "name": "bayport", "type": "bayport-cni", "apiServer": api.url,
            "token": TOKEN}
    env = cni_env(namespace, sandbox.path(namespace), "default", "web")
    first = await run_cni("ADD", conf, env=env)
    again = await run_cni("ADD", conf, env=env)

    assert first.returncode == again.returncode == 0, (first.document, again.document)
    assert again.document is not None
    assert again.document["ips"][0]["version"] == "4"  # the 0.4.0 result shape
    assert interface_facts(namespace)[0] == ["10.201.7.9/24"]
    assert (await run_cni("DEL", conf, env=env)).returncode == 0
