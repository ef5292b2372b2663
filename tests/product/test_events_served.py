"""The event stream and metrics through the product as shipped: ``bayport serve`` as a
subprocess, tokens from ``bayport token-create``, bays made and deleted with the ``bayport`` CLI
(whose ``--wait`` follows the stream), and ``GET /v1/events`` read over HTTP by httpx. A member
sees its bay come up event by event, resumes with Last-Event-ID, another project's stream never
carries it, and ``/metrics`` is refused to the member and parseable Prometheus text for the admin."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.product.served import BAYPORT, Served, served
from tests.sse import frames, objects, until

pytestmark = [pytest.mark.slow]


async def as_user(server: Served, token: str, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        BAYPORT, *args, env={**server.env, "BAYPORT_TOKEN": token, "COLUMNS": "250"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, f"bayport {' '.join(args)}: {out.decode()}"
    return out.decode()


def _client(server: Served, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, headers={"X-Auth-Token": token}, timeout=30)


def _events_requests(text: str) -> float:
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "bayport_http_requests_total" and s.labels.get("route") == "/v1/events")


async def test_a_member_follows_its_bay_and_nobody_else_does(tmp_path: Path) -> None:
    async with served(tmp_path / "data", default_runtime="simulated") as server:
        tokens = {}
        for project in ("alice", "bob"):
            out = await server.cli("token-create", "--project", project, "--user", project)
            tokens[project] = out.strip().splitlines()[-1]
        await as_user(server, tokens["alice"], "baymodel-create", "--name", "k8s")
        async with _client(server, tokens["alice"]) as alice, \
                _client(server, tokens["bob"]) as bob, server.http() as admin:
            before = _events_requests((await admin.get("/metrics")).text)
            async with alice.stream("GET", "/v1/events", params={"kind": "bay"}) as a_resp, \
                    bob.stream("GET", "/v1/events", params={"since": 0}) as b_resp:
                assert a_resp.status_code == 200 and b_resp.status_code == 200
                a_stream = frames(a_resp)
                out = await as_user(server, tokens["alice"], "bay-create", "--name", "b1",
                                    "--baymodel", "k8s", "--wait")
                assert "CREATE_COMPLETE" in out
                seen = objects(await until(a_stream, lambda f: f.event == "message"
                                           and f.json["status"] == "CREATE_COMPLETE"))
                assert seen[0]["status"] == "CREATE_IN_PROGRESS" and seen[0]["name"] == "b1"
                assert {e["project_id"] for e in seen} == {"alice"}
                # The CLI's --wait was a stream (its request is counted once it ended).
                after = _events_requests((await admin.get("/metrics")).text)
                assert after >= before + 1
                # Bob's own change is the first thing his stream carries: nothing of Alice's.
                await as_user(server, tokens["bob"], "baymodel-create", "--name", "mine")
                bob_seen = objects(await until(frames(b_resp), lambda f: f.event == "message"))
                assert [(e["kind"], e["name"], e["project_id"]) for e in bob_seen] == [
                    ("baymodel", "mine", "bob")]
            # Resume after the first event: the rest again, in order.
            async with alice.stream("GET", "/v1/events", params={"kind": "bay"},
                                    headers={"Last-Event-ID": str(seen[0]["id"])}) as resp:
                again = objects(await until(frames(resp), lambda f: f.event == "message"
                                            and f.json["status"] == "CREATE_COMPLETE"))
            assert [e["id"] for e in again] == [e["id"] for e in seen[1:]]
            assert (await bob.get("/v1/events", params={"bay": "b1"})).status_code == 404
            # Deleting with --wait, followed on the stream until the row is gone.
            async with alice.stream("GET", "/v1/events", params={"bay": "b1"}) as resp:
                stream = frames(resp)
                out = await as_user(server, tokens["alice"], "bay-delete", "b1", "--wait")
                assert "deleted" in out
                gone = objects(await until(stream, lambda f: f.event == "message"
                                           and f.json["kind"] == "bay"
                                           and f.json["action"] == "deleted"))
            assert gone[-1]["uuid"] == seen[0]["uuid"]
            # Metrics: the member is refused, the admin gets Prometheus text.
            assert (await alice.get("/metrics")).status_code == 403
            resp = await admin.get("/metrics")
            assert resp.status_code == 200
            names = {f.name for f in text_string_to_metric_families(resp.text)}
            assert {"bayport_http_requests", "bayport_rpc_client_requests",
                    "bayport_conductor_inflight_operations", "bayport_bays"} <= names
