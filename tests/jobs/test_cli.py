"""The job-service commands of the `bayport` CLI against a running Bayport over real HTTP.

The commands run in a thread (the stack serves from this test's event loop); one run goes
through the installed console script to show the entry point is wired.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from unittest import mock

import yaml
from typer.testing import CliRunner

from bayport.cli.client import Client
from bayport.cli.main import app
from tests.cli.test_bay_cli import run as run_script
from tests.jobs.support import fast_template
from tests.stack import Stack


async def run(stack: Stack, *args: str, check: bool = True) -> tuple[int, str, str]:
    env = {"BAYPORT_URL": stack.url, "BAYPORT_TOKEN": stack.admin_token, "COLUMNS": "200"}
    opened: list[Client] = []
    init = Client.__init__

    def tracked(self: Client, *a: Any, **kw: Any) -> None:
        init(self, *a, **kw)
        opened.append(self)

    # A command's Client is left to process exit to close; in-process, close it here.
    with mock.patch.object(Client, "__init__", tracked):
        result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    for client in opened:
        client.http.close()
    if check and result.exit_code != 0:
        raise AssertionError(f"bayport {' '.join(args)} exited {result.exit_code}: {result.stderr}")
    return result.exit_code, result.stdout, result.stderr


async def test_job_commands_end_to_end(stack: Stack, tmp_path: Path) -> None:
    await run(stack, "baymodel-create", "--name", "k8s")
    await run(stack, "bay-create", "--name", "jobbay", "--baymodel", "k8s", "--wait")
    _, out, _ = await run(stack, "tenant-create", "--name", "exam", "--bay", "jobbay", "--id", "exam1",
                          "--format", "json")
    assert json.loads(out)["namespace"] == "exam1"
    _, out, _ = await run(stack, "template-show", "--tenant", "exam1")
    assert yaml.safe_load(out)["metadata"]["name"] == "job-{}-{}"
    template = tmp_path / "template.yaml"
    template.write_text(yaml.safe_dump(fast_template("0", ttlSecondsAfterFinished=300)))
    await run(stack, "template-set", "--tenant", "exam1", str(template))
    for claim in ("gluster-exam", "nfs-exam"):
        await run(stack, "volume-create", "--tenant", "exam1", "--name", claim, "--size", "1Gi")
    _, out, _ = await run(stack, "volume-list", "--tenant", "exam1")
    assert "gluster-exam" in out and "nfs-exam" in out
    _, out, err = await run_script(stack, "job-submit", "--tenant", "exam1", "--cmd", "cp -r /src/* /dest/",
                            "--vol", "gluster-exam:/dest", "--vol", "nfs-exam:/src", "--wait",
                            "--format", "json")
    job = json.loads(out)
    assert job["status"] == "Succeeded" and job["vols"][1] == {"pvc": "nfs-exam", "mount": "/src"}
    assert f"{job['name']}: Succeeded" in err
    _, out, _ = await run(stack, "job-list", "--tenant", "exam1", "--status", "Succeeded")
    assert job["uuid"] in out
    _, out, _ = await run(stack, "job-show", job["uuid"])
    assert "Succeeded" in out
    _, out, _ = await run(stack, "job-logs", job["uuid"])
    assert "exited with code 0" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"apiVersion": "batch/v1", "kind": "Job"}))
    code, _, err = await run(stack, "template-set", "--tenant", "exam1", str(bad), check=False)
    assert code == 1 and "metadata: must be an object" in err
    code, _, err = await run(stack, "job-submit", "--tenant", "exam1", "--cmd", "ls", "--vol", "nope",
                             check=False)
    assert code == 1 and "is not PVC:/MOUNT" in err
    await run(stack, "job-delete", job["uuid"])
    _, out, _ = await run(stack, "job-list", "--format", "json")
    assert json.loads(out) == []
    await run(stack, "tenant-delete", "exam1")
    _, out, _ = await run(stack, "tenant-list", "--format", "json")
    assert json.loads(out) == []
