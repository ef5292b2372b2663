"""No 5xx for anything a client can send: schemathesis generates requests from the live
OpenAPI document (every operation, valid and invalid inputs) and checks each answer."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.stack import Stack

ST = Path(sys.executable).parent / "st"


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_no_server_errors_for_generated_requests(stack: Stack) -> None:
    async with stack.client() as c:
        await stack.baymodel(c, "k8s")
        await stack.bay(c, "k8s")
    proc = await asyncio.create_subprocess_exec(
        str(ST), "run", f"{stack.url}/openapi.json", "-H", f"X-Auth-Token: {stack.admin_token}",
        "--checks", "not_a_server_error", "--max-examples", "8", "--phases", "coverage,fuzzing",
        "--seed", "20261122", "--no-color",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, text[-6000:]
    assert " passed" in text
