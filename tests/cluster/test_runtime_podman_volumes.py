"""Pod volumes on the podman runtime: an emptyDir shared by two containers, a claim's directory
mounted where the pod asks for it, and emptyDirs gone with the pod."""

from __future__ import annotations

from pathlib import Path

import pytest

from bayport.cluster.validation import apply_defaults
from tests.cluster.podman_support import (
    containers_of,
    pod_body,
    podman_cluster,
    require_podman,
    sh,
    wait_for,
)

pytestmark = pytest.mark.podman


@pytest.fixture(autouse=True)
async def _podman() -> None:
    await require_podman()


async def test_empty_dir_is_shared_by_the_pods_containers_and_removed_with_it(tmp_path: Path) -> None:
    async with podman_cluster(tmp_path) as pc:
        mount = [{"name": "scratch", "mountPath": "/data"}]
        pc.create(pod_body(
            "pair",
            sh("writer", "echo shared-$(hostname) > /data/f; sleep 3600", volumeMounts=mount),
            sh("reader", "while [ ! -f /data/f ]; do sleep 0.1; done; cat /data/f; sleep 3600",
               volumeMounts=mount),
            volumes=[{"name": "scratch", "emptyDir": {}}]))
        await pc.phase("pair", "Running")
        await pc.logs_contain("pair", "shared-pair", container="reader")
        sandbox = pc.sandbox_of("pair")
        scratch = tmp_path / "bay" / "podman" / sandbox / "volumes" / "scratch"
        assert (scratch / "f").read_text() == "shared-pair\n"

        pc.store.delete("pods", "default", "pair")
        await wait_for(lambda: not scratch.exists(), what="emptyDir removed")


async def test_claim_directory_is_mounted(tmp_path: Path) -> None:
    async with podman_cluster(tmp_path) as pc:
        pc.store.create("persistentvolumeclaims", {
            "metadata": {"name": "stuff"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
        claim_dir = tmp_path / "bay" / "pv" / "default" / "stuff"
        await wait_for(lambda: claim_dir.is_dir(), what="claim provisioned")
        (claim_dir / "in.txt").write_text("from the host\n")
        pc.create(pod_body(
            "user", sh("main", "cat /mnt/in.txt; echo from the pod > /mnt/sub/out.txt",
                       volumeMounts=[{"name": "vol", "mountPath": "/mnt"},
                                     {"name": "vol", "mountPath": "/mnt/sub", "subPath": "sub"}]),
            restart_policy="Never",
            volumes=[{"name": "vol", "persistentVolumeClaim": {"claimName": "stuff"}}]))
        await pc.phase("user", "Succeeded")
        assert "from the host" in await pc.logs("user")
        assert (claim_dir / "sub" / "out.txt").read_text() == "from the pod\n"


async def test_a_pod_named_to_escape_that_bypassed_admission_gets_no_host_directory(tmp_path: Path) -> None:
    """Issue 10's escape pod, stored as if admission had not run (an old journal): the runtime
    itself refuses to build the volume, and nothing on the host is touched."""
    async with podman_cluster(tmp_path) as pc:
        body = pod_body("escape", sh("main", "cat /host/etc/hostname; sleep 3600",
                                     volumeMounts=[{"name": "/", "mountPath": "/host"}]),
                        volumes=[{"name": "/", "emptyDir": {}}])
        apply_defaults("pods", body)
        pc.store.validate = False
        pc.create(body)
        pc.store.validate = True
        waiting = await wait_for(lambda: (pc.status("escape").get("state") or {}).get("waiting", {})
                                 .get("reason") == "CreateContainerConfigError"
                                 and pc.status("escape")["state"]["waiting"], what="escape refused")
        assert "outside" in waiting["message"]
        assert not [c for c in containers_of(pc.uid) if "escape" in c["Names"][0]]
