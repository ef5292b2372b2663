"""``bayport-cni`` without touching the kernel: VERSION, the error object and codes for
bad environment and configuration, the bounded wait for the port annotation (code 11),
and the cluster-API side (kubeconfig, waiting for an annotation that comes later).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bayport.network.annotation_keys import NEUTRON_PORT, NEUTRON_SUBNET
from bayport.network.cni import clusterapi, run
from bayport.network.cni.binding import binding_from_annotations
from bayport.network.cni.spec import CNIError, Code, NetConf
from tests.network.cni_support import cni_env, run_cni, write_kubeconfig
from tests.network.fake_kube_api import FakeKubeAPI, serve

TOKEN = "s3cret-token"
PORT = {"id": "b345e440-b9c8-48d8-9d1c-07b91d066b08", "name": "nginx", "mac_address": "fa:16:3e:36:47:de",
        "fixed_ips": [{"ip_address": "192.168.0.2", "subnet_id": "397f6de9-bee3-4e66-8056-f9e54a7ec5e0"}],
        "device_id": "", "network_id": "8321a4a7-65f8-4e87-885d-8625549ab51c", "status": "ACTIVE"}
SUBNET = {"id": "397f6de9-bee3-4e66-8056-f9e54a7ec5e0", "name": "default-subnet", "cidr": "192.168.0.0/24",
          "gateway_ip": "192.168.0.1", "ip_version": 4, "dns_nameservers": ["192.168.0.53"],
          "allocation_pools": [{"start": "192.168.0.2", "end": "192.168.0.254"}]}
ANNOTATIONS = {NEUTRON_PORT: json.dumps(PORT), NEUTRON_SUBNET: json.dumps(SUBNET)}


@pytest.fixture
async def api() -> AsyncIterator[FakeKubeAPI]:
    async with serve(FakeKubeAPI(TOKEN)) as running:
        yield running


def conf(api_url: str, **extra: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "bayport", "type": "bayport-cni",
            "apiServer": api_url, "token": TOKEN, **extra}


ADD_ENV = cni_env("c0ffee", "/var/run/netns/none", "default", "nginx")
# A CNI_NETNS path that exists but is no namespace (this file): these ADDs fail before any
# plumbing, and if one ever got that far, joining a regular file's "namespace" fails too.
WAITING_ENV = {**ADD_ENV, "CNI_NETNS": __file__}


async def test_version_lists_the_supported_versions() -> None:
    outcome = await run_cni("VERSION", {"cniVersion": "1.0.0"})
    assert outcome.returncode == 0
    assert outcome.document == {"cniVersion": "1.0.0",
                                "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]}


@pytest.mark.parametrize(("command", "env", "expected"), [
    ("", ADD_ENV, "CNI_COMMAND"),
    ("BIND", ADD_ENV, "CNI_COMMAND"),
    ("ADD", {k: v for k, v in ADD_ENV.items() if k != "CNI_CONTAINERID"}, "CNI_CONTAINERID"),
    ("ADD", {**ADD_ENV, "CNI_ARGS": "K8S_POD_NAMESPACE=default"}, "K8S_POD_NAME"),
    ("ADD", {**ADD_ENV, "CNI_ARGS": "garbage"}, "KEY=VALUE"),
    ("ADD", {**ADD_ENV, "CNI_IFNAME": "an-interface-name-too-long"}, "CNI_IFNAME"),
    ("CHECK", {k: v for k, v in ADD_ENV.items() if k != "CNI_NETNS"}, "CNI_NETNS"),
])
async def test_invalid_environment_is_code_4(command: str, env: dict[str, str], expected: str) -> None:
    returncode, document = await run({**env, "CNI_COMMAND": command},
                                     json.dumps(conf("http://127.0.0.1:1")).encode())
    assert returncode != 0
    assert document is not None
    assert document["code"] == 4 and Code.INVALID_ENVIRONMENT.value == 4
    assert expected in document["msg"] + document["details"]
    assert set(document) == {"cniVersion", "code", "msg", "details"}


async def test_the_executable_prints_the_error_object_and_exits_non_zero() -> None:
    env = {k: v for k, v in ADD_ENV.items() if k != "CNI_CONTAINERID"}
    outcome = await run_cni("ADD", conf("http://127.0.0.1:1"), env=env)
    assert outcome.returncode == 1
    assert outcome.document == {"cniVersion": "1.0.0", "code": 4,
                                "msg": "missing environment variables: CNI_CONTAINERID",
                                "details": "CNI_COMMAND=ADD"}


@pytest.mark.parametrize(("stdin", "code"), [
    (b"{not json", Code.DECODING_FAILURE),
    (b"[1, 2]", Code.DECODING_FAILURE),
    (json.dumps({"cniVersion": "9.9.9", "name": "n", "type": "bayport-cni",
                 "apiServer": "http://x"}).encode(), Code.INCOMPATIBLE_VERSION),
    (json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "bridge",
                 "apiServer": "http://x"}).encode(), Code.INVALID_NETWORK_CONFIG),
    (json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "bayport-cni"}).encode(),
     Code.INVALID_NETWORK_CONFIG),
    (json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "bayport-cni", "apiServer": "http://x",
                 "portWaitSeconds": -1}).encode(), Code.INVALID_NETWORK_CONFIG),
    (json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "bayport-cni", "apiServer": "http://x",
                 "bridge": "a-bridge-name-too-long"}).encode(), Code.INVALID_NETWORK_CONFIG),
])
async def test_invalid_configuration_has_the_spec_code(stdin: bytes, code: Code) -> None:
    returncode, document = await run({**ADD_ENV, "CNI_COMMAND": "ADD"}, stdin)
    assert returncode != 0
    assert document is not None and document["code"] == code


async def test_missing_annotation_is_try_again_later_and_bounded(api: FakeKubeAPI) -> None:
    api.add_pod("default", "nginx")
    outcome = await run_cni("ADD", conf(api.url, portWaitSeconds=0.5), env=WAITING_ENV)

    assert outcome.returncode != 0
    assert outcome.document is not None
    assert outcome.document["code"] == 11 and Code.TRY_AGAIN_LATER.value == 11
    assert "default/nginx" in outcome.document["msg"]
    assert outcome.seconds < 5
    # It waited on a watch of that one pod, not by polling.
    assert any("watch=true" in q and "metadata.name%3Dnginx" in q for q in api.requests)


async def test_a_wrong_token_is_refused_at_once(api: FakeKubeAPI) -> None:
    api.add_pod("default", "nginx", ANNOTATIONS)
    outcome = await run_cni("ADD", conf(api.url, token="wrong", portWaitSeconds=10), env=WAITING_ENV)
    assert outcome.document is not None and outcome.document["code"] == Code.CLUSTER_API_REFUSED
    assert outcome.seconds < 5


async def test_an_unusable_annotation_is_a_clear_error(api: FakeKubeAPI) -> None:
    api.add_pod("default", "nginx", {NEUTRON_PORT: "{}", NEUTRON_SUBNET: json.dumps(SUBNET)})
    outcome = await run_cni("ADD", conf(api.url), env=WAITING_ENV)
    assert outcome.document is not None and outcome.document["code"] == Code.BAD_PORT_ANNOTATION


async def test_a_missing_netns_is_container_unknown_at_once(api: FakeKubeAPI) -> None:
    api.add_pod("default", "nginx")  # not annotated: ADD must not wait for it
    outcome = await run_cni("ADD", conf(api.url, portWaitSeconds=30), env=ADD_ENV)
    assert outcome.document is not None and outcome.document["code"] == Code.UNKNOWN_CONTAINER
    assert outcome.seconds < 10


async def test_waiting_ends_when_the_controller_annotates(api: FakeKubeAPI, tmp_path: Path) -> None:
    uid = api.add_pod("team-a", "web")
    access = clusterapi.load_kubeconfig(write_kubeconfig(tmp_path / "kubeconfig", api.url, TOKEN))

    async def controller() -> None:
        await asyncio.sleep(0.3)
        api.annotate("team-a", "web", ANNOTATIONS)

    annotating = asyncio.create_task(controller())
    binding = await clusterapi.wait_for_binding(access, "team-a", "web", pod_uid=uid, timeout=10)
    await annotating

    assert (binding.address, binding.prefixlen, binding.mac) == ("192.168.0.2", 24, "fa:16:3e:36:47:de")
    assert binding.gateway == "192.168.0.1"
    assert binding.dns_nameservers == ("192.168.0.53",)


async def test_a_pod_with_another_uid_is_not_ours(api: FakeKubeAPI) -> None:
    api.add_pod("default", "nginx", ANNOTATIONS)  # an older pod of the same name
    access = clusterapi.ClusterAccess(server=api.url, token=TOKEN, verify=True)
    with pytest.raises(CNIError) as caught:
        await clusterapi.wait_for_binding(access, "default", "nginx", pod_uid="another", timeout=0.4)
    assert caught.value.code == Code.TRY_AGAIN_LATER


async def test_an_unreachable_api_is_try_again_later() -> None:
    access = clusterapi.ClusterAccess(server="http://127.0.0.1:1", token=TOKEN, verify=True)
    with pytest.raises(CNIError) as caught:
        await clusterapi.wait_for_binding(access, "default", "nginx", pod_uid=None, timeout=0.5)
    assert caught.value.code == Code.TRY_AGAIN_LATER
    assert "unreachable" in caught.value.details


def test_kubeconfig_current_context_and_token_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: second\n"
        "clusters:\n- name: one\n  cluster: {server: 'http://one:6443'}\n"
        "- name: two\n  cluster: {server: 'https://two:6443', insecure-skip-tls-verify: true}\n"
        f"users:\n- name: u\n  user: {{tokenFile: '{tmp_path / 'token'}'}}\n"
        "contexts:\n- name: first\n  context: {cluster: one, user: u}\n"
        "- name: second\n  context: {cluster: two, user: u}\n")
    access = clusterapi.load_kubeconfig(path)
    assert access.server == "https://two:6443"
    assert access.token == "from-file"
    assert not isinstance(access.verify, bool) and not access.verify.check_hostname


def test_kubeconfig_without_its_context_is_invalid_config(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("current-context: nowhere\ncontexts: []\nclusters: []\nusers: []\n")
    with pytest.raises(CNIError) as caught:
        clusterapi.load_kubeconfig(path)
    assert caught.value.code == Code.INVALID_NETWORK_CONFIG
    netconf = NetConf(cni_version="1.0.0", name="n", kubeconfig=tmp_path / "absent", api_server=None,
                      token=None, bridge=None, is_gateway=False, port_wait_seconds=1, mtu=None,
                      prev_result=None)
    with pytest.raises(CNIError) as unreadable:
        clusterapi.cluster_access(netconf)
    assert unreadable.value.code == Code.IO_FAILURE


def test_annotations_parse_into_a_binding() -> None:
    assert binding_from_annotations({}) is None
    assert binding_from_annotations({NEUTRON_PORT: json.dumps(PORT)}) is None
    outside = dict(PORT, fixed_ips=[{"ip_address": "10.0.0.2", "subnet_id": SUBNET["id"]}])
    with pytest.raises(CNIError) as caught:
        binding_from_annotations({NEUTRON_PORT: json.dumps(outside), NEUTRON_SUBNET: json.dumps(SUBNET)})
    assert caught.value.code == Code.BAD_PORT_ANNOTATION
