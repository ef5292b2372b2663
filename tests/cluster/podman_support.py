"""Helpers for the podman runtime tests: skip (or fail under CI=true) without rootful podman and
the local busybox image, an embedded cluster on podman with a unique uid, and podman queries
scoped to that cluster's label so concurrent runs never see each other's containers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from bayport.cluster.errors import ApiError
from bayport.cluster.host import ClusterSpec, EmbeddedCluster
from bayport.cluster.runtime.podman_net import bridge_name
from bayport.cluster.runtime.select import podman_problem
from tests.conftest import require

IMAGE = "localhost/busybox:1.28.4"
Obj = dict[str, Any]


def _image_runs() -> str | None:
    try:
        done = subprocess.run(["podman", "run", "--rm", "--network", "none", IMAGE, "true"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if done.returncode == 0 else done.stderr.strip()[-300:]


_image_problem: list[str | None] = []


async def require_podman(*, bayport_network: bool = False) -> None:
    problem = await podman_problem(bayport_network=bayport_network)
    require(problem is None, f"podman runtime unavailable: {problem}")
    if not _image_problem:
        _image_problem.append(await asyncio.to_thread(_image_runs))
    require(_image_problem[0] is None, f"the local image {IMAGE} does not run (.ci/podman-setup builds "
                                       f"it): {_image_problem[0]}")


def podman_json(*args: str) -> Any:
    done = subprocess.run(["podman", *args, "--format", "json"], capture_output=True, text=True, timeout=60,
                          check=True)
    return json.loads(done.stdout or "[]")


def containers_of(uid: str) -> list[Obj]:
    return list(podman_json("ps", "-a", "--filter", f"label=bayport.cluster={uid}"))


def pods_of(uid: str) -> list[Obj]:
    return list(podman_json("pod", "ps", "--filter", f"label=bayport.cluster={uid}"))


def inspect(container_id: str) -> Obj:
    result: Obj = podman_json("container", "inspect", container_id)[0]
    return result


def leftovers(uid: str) -> list[str]:
    """Everything the cluster ``uid`` could have left on the machine."""
    found = [f"container {c['Names'][0]}" for c in containers_of(uid)]
    found += [f"pod {p['Name']}" for p in pods_of(uid)]
    prefix = f"bp-{uid[:8]}-"
    netns = Path("/run/netns")
    if netns.exists():
        found += [f"netns {n.name}" for n in netns.iterdir() if n.name.startswith(prefix)]
    if Path(f"/sys/class/net/{bridge_name(uid)}").exists():
        found.append(f"bridge {bridge_name(uid)}")
    return found


async def wait_for(check: Callable[[], Any], *, timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except ApiError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        await asyncio.sleep(0.05)


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout: float = 15.0, what: str = "") -> Any:
    """Like ``wait_for`` for an async check (an HTTP probe)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


async def http_text(url: str) -> str | None:
    """The body of a 200 answer, or None while nothing (or something else) answers."""
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            response = await client.get(url)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


def pod_body(name: str, *containers: Obj, restart_policy: str = "Always", **spec: Any) -> Obj:
    for c in containers:
        c.setdefault("image", IMAGE)
        c.setdefault("imagePullPolicy", "Never")
    return {"metadata": {"name": name},
            "spec": {"containers": list(containers), "restartPolicy": restart_policy, **spec}}


def sh(name: str, script: str, **fields: Any) -> Obj:
    return {"name": name, "command": ["sh", "-c", script], **fields}


class PodmanCluster:
    """An EmbeddedCluster on podman plus the queries the tests make of it."""

    def __init__(self, cluster: EmbeddedCluster) -> None:
        self.cluster = cluster
        self.uid = cluster.spec.uid

    @property
    def store(self) -> Any:
        return self.cluster.store

    def pod(self, name: str, namespace: str = "default") -> Obj:
        result: Obj = self.store.get("pods", namespace, name)
        return result

    def create(self, body: Obj, namespace: str = "default") -> Obj:
        result: Obj = self.store.create("pods", {**body, "metadata": {**body["metadata"],
                                                                     "namespace": namespace}})
        return result

    async def phase(self, name: str, *phases: str, timeout: float = 20.0) -> Obj:
        def check() -> Obj | None:
            pod = self.pod(name)
            return pod if pod["status"].get("phase") in phases else None
        result: Obj = await wait_for(check, timeout=timeout, what=f"pod {name} in {phases}")
        return result

    def status(self, name: str, container: int = 0) -> Obj:
        statuses = self.pod(name)["status"].get("containerStatuses") or [{}]
        result: Obj = statuses[container]
        return result

    async def logs(self, name: str, container: str | None = None, **kwargs: Any) -> str:
        stream = await self.cluster.controllers.pod_logs("default", name, container, **kwargs)
        return b"".join([chunk async for chunk in stream]).decode()

    async def logs_contain(self, name: str, text: str, container: str | None = None,
                           timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            got = await self.logs(name, container)
            if text in got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"logs of {name} lack {text!r}: {got!r}")
            await asyncio.sleep(0.1)

    def sandbox_of(self, name: str) -> str:
        uid = self.pod(name)["metadata"]["uid"]
        found = [p["Name"] for p in pods_of(self.uid) if p["Labels"].get("bayport.pod-uid") == uid]
        assert len(found) == 1, found
        return str(found[0])


@asynccontextmanager
async def podman_cluster(tmp_path: Path, **spec_fields: Any) -> AsyncIterator[PodmanCluster]:
    uid = str(uuid.uuid4())
    spec = ClusterSpec(name="pm", uid=uid, token=uuid.uuid4().hex, runtime="podman",
                       data_dir=tmp_path / "bay", **spec_fields)
    cluster = EmbeddedCluster(spec)
    await cluster.start()
    left: list[str] = []
    try:
        yield PodmanCluster(cluster)
    finally:
        try:
            await cluster.stop()
        finally:
            left = leftovers(uid)
            if left:
                purge(uid)
    assert not left, f"stopping the cluster left {left} behind"


def purge(uid: str) -> None:
    """Last-resort clean-up for a test that failed half-way (normally ``stop`` leaves nothing)."""
    label = f"label=bayport.cluster={uid}"
    pods = [p["Name"] for p in pods_of(uid)]
    if pods:
        subprocess.run(["podman", "pod", "rm", "-f", "-t", "0", *pods], capture_output=True, timeout=120)
    rest = [c["Id"] for c in podman_json("ps", "-a", "--filter", label)]
    if rest:
        subprocess.run(["podman", "rm", "-f", "-t", "0", *rest], capture_output=True, timeout=120)
    for item in leftovers(uid):
        kind, name = item.split(" ", 1)
        if kind == "netns":
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=30)
        elif kind == "bridge":
            subprocess.run(["ip", "link", "delete", name], capture_output=True, timeout=30)
