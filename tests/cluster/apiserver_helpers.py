"""Shared pieces of the apiserver tests: a bare API server over a seeded store (no controllers),
and how to find and run the real kubectl."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bayport.cluster.http import ApiApp, ApiContext
from bayport.cluster.http.server import ApiServer
from bayport.cluster.store import Store

TOKEN = "test-token"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


@dataclass
class BareApi:
    store: Store
    url: str
    client: httpx.AsyncClient


@asynccontextmanager
async def bare_api(namespaces: tuple[str, ...] = ("default", "kube-system"), *,
                   bookmark_interval: float = 30.0) -> AsyncIterator[BareApi]:
    store = Store()
    for ns in namespaces:
        store.create("namespaces", {"metadata": {"name": ns}})
    server = ApiServer(ApiApp(ApiContext(store, bookmark_interval=bookmark_interval), TOKEN))
    url = await server.start()
    try:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                                     timeout=10) as client:
            yield BareApi(store, url, client)
    finally:
        await server.stop()


def pod_manifest(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}


def kubectl_binary() -> str | None:
    venv = Path(sys.prefix) / "bin" / "kubectl"
    if venv.exists():
        return str(venv)
    path = os.pathsep.join(["/work/main/.venv/bin", os.environ.get("PATH", "")])
    return shutil.which("kubectl", path=path)


async def run_kubectl(binary: str, kubeconfig: Path, *args: str, stdin: bytes | None = None
                      ) -> tuple[int, str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig),
           "KUBECACHEDIR": str(kubeconfig.parent / "kube-cache"), "HOME": str(kubeconfig.parent)}
    proc = await asyncio.create_subprocess_exec(
        binary, *args, env=env, stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode or 0, out.decode()
