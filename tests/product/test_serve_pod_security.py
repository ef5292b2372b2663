"""The container escape and host-network holes of issue 10, tried on ``bayport serve`` with a
podman bay, the way a project member would: ``bayport pod-create`` and ``kubectl apply`` with the
bay's kubeconfig. A pod whose emptyDir is *named* ``/`` would have mounted the host's root (and
read the marker this test plants on the host); a ``hostNetwork`` pod would have reached the
host's loopback services. Both are refused by Bayport's API and by the bay's own admission,
while the same pod with a proper volume name is accepted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.apiserver_helpers import kubectl_binary
from tests.cluster.podman_support import IMAGE, require_podman
from tests.product.served import BAYPORT, Served, served
from tests.product.test_serve_podman import _podman_bay

pytestmark = [pytest.mark.podman, pytest.mark.root, pytest.mark.slow]

ESCAPE = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  volumes:
  - name: {volume}
    emptyDir: {{medium: {medium}}}
  containers:
  - name: main
    image: {image}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "cat /host{marker}; sleep 3600"]
    volumeMounts:
    - name: {volume}
      mountPath: /host
"""

HOST_NETWORK = """apiVersion: v1
kind: Pod
metadata:
  name: loopback
spec:
  hostNetwork: true
  containers:
  - name: main
    image: {image}
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "wget -qO- http://127.0.0.1:{port}/ ; sleep 3600"]
"""


async def _refused_by_both(server: Served, kubeconfig: Path, manifest: Path, name: str,
                           words: str) -> None:
    code, out, err = await server.run(BAYPORT, "pod-create", "--manifest", str(manifest), "--bay", "sec")
    assert code != 0, out
    assert words in out + err, out + err
    kubectl = kubectl_binary()
    assert kubectl is not None
    code, out, err = await server.run(kubectl, "--kubeconfig", str(kubeconfig), "apply", "-f", str(manifest))
    assert code != 0, out
    assert words in err, err
    code, out, err = await server.run(kubectl, "--kubeconfig", str(kubeconfig), "get", "pod", name)
    assert code != 0 and "NotFound" in err, out + err
    assert name not in {p["name"] for p in await server.cli_json("pod-list", "--bay", "sec")}


@pytest.mark.timeout(240)
async def test_escape_and_host_network_pods_are_refused_by_api_and_bay(tmp_path: Path) -> None:
    await require_podman(bayport_network=True)
    if kubectl_binary() is None:
        pytest.skip("kubectl is not installed")
    marker = tmp_path / "host-marker"
    marker.write_text("the host's own file\n")
    async with served(tmp_path / "data") as server:
        await _podman_bay(server, "sec")
        kubeconfig = tmp_path / "kubeconfig"
        await server.cli("bay-config", "sec", "--output", str(kubeconfig))

        for volume, medium in (("/", '""'), ("../../../etc", '""'), ("/etc", "Memory")):
            manifest = tmp_path / "escape.yaml"
            manifest.write_text(ESCAPE.format(name="escape", volume=volume, medium=medium, image=IMAGE,
                                              marker=marker))
            await _refused_by_both(server, kubeconfig, manifest, "escape", "spec.volumes[0].name")

        manifest = tmp_path / "net.yaml"
        manifest.write_text(HOST_NETWORK.format(image=IMAGE, port=server.url.rsplit(":", 1)[1]))
        await _refused_by_both(server, kubeconfig, manifest, "loopback",
                               'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)')

        fine = tmp_path / "fine.yaml"
        fine.write_text(ESCAPE.format(name="fine", volume="scratch", medium='""', image=IMAGE,
                                      marker="/etc/hostname"))
        kubectl = kubectl_binary()
        assert kubectl is not None
        code, out, err = await server.run(kubectl, "--kubeconfig", str(kubeconfig), "apply",
                                          "--dry-run=server", "-f", str(fine))
        assert code == 0, out + err
        await server.cli("bay-delete", "sec", "--wait")
