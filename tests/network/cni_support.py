"""Running the real ``bayport-cni`` executable the way a container runtime does:
CNI_* environment, network configuration on stdin, JSON on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CNI_BINARY = Path(sys.executable).parent / "bayport-cni"


@dataclass
class Outcome:
    returncode: int
    document: dict[str, Any] | None
    seconds: float
    stderr: str


async def run_cni(command: str, conf: dict[str, Any] | bytes | None = None, *,
                  env: dict[str, str] | None = None, timeout: float = 60) -> Outcome:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    environ.update({"CNI_COMMAND": command, **(env or {})})
    stdin = conf if isinstance(conf, bytes) else json.dumps(conf or {}).encode()
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        str(CNI_BINARY), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=environ)
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    seconds = time.perf_counter() - started
    text = out.decode().strip()
    document = json.loads(text) if text else None
    assert proc.returncode is not None
    return Outcome(proc.returncode, document, seconds, err.decode())


def cni_env(container_id: str, netns: str, pod_namespace: str, pod_name: str, *,
            pod_uid: str | None = None, ifname: str = "eth0") -> dict[str, str]:
    args = f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod_namespace};K8S_POD_NAME={pod_name}"
    if pod_uid:
        args += f";K8S_POD_UID={pod_uid}"
    return {"CNI_CONTAINERID": container_id, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
            "CNI_ARGS": args, "CNI_PATH": "/opt/cni/bin"}


def write_kubeconfig(path: Path, server: str, token: str) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: bay\n"
        f"clusters:\n- name: bay\n  cluster:\n    server: {server}\n"
        f"users:\n- name: admin\n  user:\n    token: {token}\n"
        "contexts:\n- name: bay\n  context:\n    cluster: bay\n    user: admin\n")
    return path
