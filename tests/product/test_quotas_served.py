"""Quotas through the product as shipped: the admin sets one with the ``bayport`` CLI against
``bayport serve``; a member of that project hits it and is told which quota, and sees its use."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.product.served import BAYPORT, Served, served

pytestmark = [pytest.mark.slow]


async def as_user(server: Served, token: str, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        BAYPORT, *args, env={**server.env, "BAYPORT_TOKEN": token, "COLUMNS": "250"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode()


async def test_a_member_meets_the_quota_the_admin_set(tmp_path: Path) -> None:
    async with served(tmp_path / "data") as server:
        member = (await server.cli("token-create", "--project", "acme", "--user", "ann",
                                   "--role", "member")).strip().splitlines()[-1]
        await server.cli("quota-create", "Cluster", "--project", "acme", "--hard-limit", "1")
        code, out = await as_user(server, member, "baymodel-create", "--name", "k8s",
                                  "--labels", "runtime=simulated")
        assert code == 0, out
        code, out = await as_user(server, member, "bay-create", "--name", "one", "--baymodel", "k8s",
                                  "--wait")
        assert code == 0, out
        code, out = await as_user(server, member, "bay-create", "--name", "two", "--baymodel", "k8s")
        assert code != 0 and "quota Cluster" in out and "403" in out, out
        code, out = await as_user(server, member, "quota-list", "--format", "json")
        assert code == 0, out
        quotas = {q["resource"]: q for q in json.loads(out)}
        assert quotas["Cluster"]["hard_limit"] == 1 and quotas["Cluster"]["in_use"] == 1
        code, out = await as_user(server, member, "quota-update", "acme", "Cluster",
                                  "--hard-limit", "5")
        assert code != 0 and "403" in out, out          # only an admin changes quotas
        await server.cli("quota-update", "acme", "Cluster", "--hard-limit", "2")
        code, out = await as_user(server, member, "bay-create", "--name", "two", "--baymodel", "k8s")
        assert code == 0, out
