"""One informer per bay and resource, in the product as shipped: a change of a pod that workload
rows, job records and the pod network all care about reaches ``bayport serve`` on one
connection (each subsystem used to hold a pod watch of its own: three), counted by the kernel
(``ss``), and all three consumers of that one pod stream still do their work: the row of a pod
made with the CLI follows it, a pod made with kubectl gets its network annotations, a job's
record finishes; after a SIGKILL and a restart they all resume on the new process's streams."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.test_workloads_cli import kubectl_binary
from tests.product.served import Served, served
from tests.product.test_serve_podman import POD

pytestmark = [pytest.mark.slow, pytest.mark.kubectl]

PROBE = "probe"


def received(server: Served, port: int) -> dict[int, int]:
    """Bytes received so far on each connection the serve process opened to ``port``, by local
    port (``ss``: the kernel's own count; the process's server side is not counted)."""
    assert server.proc is not None
    out = subprocess.run(["ss", "-tinpH", "state", "established", "dport", f"= :{port}"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    counts: dict[int, int] = {}
    local: int | None = None
    for line in out.splitlines():
        if not line.startswith(("\t", " ")):
            fields = line.split()
            mine = f"pid={server.proc.pid}," in line
            local = int(fields[2].rsplit(":", 1)[1]) if mine else None
        elif local is not None:
            match = re.search(r"bytes_received:(\d+)", line)
            counts[local] = int(match.group(1)) if match else 0
    return counts


async def streams_carrying_a_pod_change(server: Served, port: int, kubeconfig: Path, pod: str) -> int:
    """Connections of the serve process on which a change of ``pod`` arrived. The labels make
    the pod of interest to all three consumers (workload rows, job records, pod network)."""
    await asyncio.sleep(1.0)     # whatever the last steps set off has arrived
    before = received(server, port)
    await kubectl(kubeconfig, "label", "pod", pod, f"bayport.io/uuid={PROBE}",
                  f"bayport.io/job-uuid={PROBE}", "--overwrite")
    await asyncio.sleep(1.0)
    after = received(server, port)
    return sum(1 for local, n in after.items() if n > before.get(local, n))


async def kubectl(kubeconfig: Path, *args: str) -> str:
    done = await asyncio.to_thread(subprocess.run, [kubectl_binary(), "--kubeconfig", str(kubeconfig), *args],
                                   capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


async def annotated(kubeconfig: Path, name: str, timeout: float = 30.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        pod = json.loads(await kubectl(kubeconfig, "get", "pod", name, "-o", "json"))
        notes = pod["metadata"].get("annotations") or {}
        if "kuryr.org/neutron-port" in notes:
            return dict(notes)
        assert time.monotonic() < deadline, f"pod {name} has no port annotation: {notes}"
        await asyncio.sleep(0.2)


async def row_status(server: Served, name: str, wanted: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        rows = {p["name"]: p["status"] for p in await server.cli_json("pod-list", "--bay", "tb")}
        if rows.get(name) == wanted or (wanted == "Deleted" and name not in rows):
            return
        assert time.monotonic() < deadline, f"pod row {name}: {rows.get(name)}, not {wanted}"
        await asyncio.sleep(0.2)


@pytest.mark.timeout(300)
async def test_one_stream_per_kind_feeds_rows_jobs_and_the_pod_network(tmp_path: Path) -> None:
    kubectl_binary()
    async with served(tmp_path / "data") as server:
        await server.cli("baymodel-create", "--name", "sim", "--image-id", "fedora-atomic",
                         "--keypair-id", "default", "--external-network-id", "public",
                         "--labels", "runtime=simulated")
        await server.cli("bay-create", "--name", "tb", "--baymodel", "sim", "--node-count", "1", "--wait")
        tenant = (await server.cli_json("tenant-create", "--name", "acme", "--bay", "tb"))["id"]
        kubeconfig = tmp_path / "tb.kubeconfig"
        await server.cli("bay-config", "tb", "-o", str(kubeconfig))
        port = urlsplit((await server.cli_json("bay-show", "tb"))["api_address"]).port
        assert port is not None

        for round_ in ("first", "after-restart"):
            (tmp_path / "pod.yaml").write_text(POD.format(name=f"cli-{round_}", image="nginx"))
            await server.cli("pod-create", "--manifest", str(tmp_path / "pod.yaml"), "--bay", "tb", "--wait")
            await row_status(server, f"cli-{round_}", "Running")
            await kubectl(kubeconfig, "run", f"kc-{round_}", "--image=nginx", "--restart=Never")
            await annotated(kubeconfig, f"kc-{round_}")
            job = await server.cli_json("job-submit", "--tenant", tenant, "--cmd", "true", "--wait")
            assert job["status"] == "Succeeded", job
            await kubectl(kubeconfig, "delete", "pod", f"cli-{round_}", "--wait=false")
            await row_status(server, f"cli-{round_}", "Deleted")
            carrying = await streams_carrying_a_pod_change(server, port, kubeconfig, f"kc-{round_}")
            assert carrying == 1, f"{carrying} pod streams\n{server.log_text()[-3000:]}"
            if round_ == "first":
                await server.restart(signal.SIGKILL)
