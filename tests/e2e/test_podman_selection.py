"""Runtime selection through the whole stack: a bay whose template says runtime=auto on a machine
without a working podman runs simulated and says why in its status_reason and its nodes' labels;
an unknown runtime fails the bay with the reason."""

from __future__ import annotations

import pytest

from bayport.cluster.runtime import select
from tests.stack import Stack, kube_get


@pytest.fixture
def no_podman(monkeypatch: pytest.MonkeyPatch) -> None:
    async def problem(*, bayport_network: bool) -> str | None:
        return "podman is not installed (test)"
    monkeypatch.setattr(select, "podman_problem", problem)


async def test_auto_without_podman_runs_simulated_and_says_so(stack: Stack, no_podman: None) -> None:
    async with stack.client() as c:
        await stack.baymodel(c, "auto-model", labels={"runtime": "auto"})
        bay = await stack.bay(c, "auto-model", name="autobay", node_count=1)
        assert bay["status"] == "CREATE_COMPLETE", bay
        assert "runtime simulated (auto: podman is not installed (test))" in bay["status_reason"]
        kubeconfig = (await c.get(f"/v1/bays/{bay['uuid']}/config")).text
        nodes = (await kube_get(kubeconfig, "/api/v1/nodes")).json()["items"]
        assert {n["metadata"]["labels"]["bayport.io/runtime"] for n in nodes} == {"simulated"}


async def test_an_unknown_runtime_fails_the_bay_with_the_reason(stack: Stack) -> None:
    async with stack.client() as c:
        await stack.baymodel(c, "bad-model", labels={"runtime": "docker"})
        bay = await stack.bay(c, "bad-model", name="badbay", node_count=1)
        assert bay["status"] == "CREATE_FAILED", bay
        reason = bay["status_reason"]
        assert "runtime='docker'" in reason and "auto, podman, simulated" in reason
