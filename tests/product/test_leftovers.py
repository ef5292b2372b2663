"""Host resources of a server that is gone, as an operator meets them: ``bayport serve`` with a
podman bay is SIGKILLed and its data dir deleted; ``bayport admin leftovers`` names its podman
pod, network namespace, bridge and pod pool route as leftovers of that owner, ``--remove``
removes them, and a second, running server's resources are untouched. Then the bays deleted
while the server was down: a ``bay-delete`` cut by SIGKILL, and a bay row gone from the
database, are cleaned up (state dir, containers, netns, bridge) when ``serve`` starts again."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from bayport.cluster.runtime.podman_net import bridge_name
from tests.cluster.podman_support import IMAGE, pods_of, require_podman
from tests.product.served import BAYPORT, Served, served
from tests.product.test_serve_podman import POD, wait_pods_running

pytestmark = [pytest.mark.podman, pytest.mark.root, pytest.mark.slow]


async def podman_bay(server: Served, tmp_path: Path, pods: tuple[str, ...] = ("web",)) -> dict[str, Any]:
    await server.cli("baymodel-create", "--name", "pm", "--image-id", "fedora-atomic", "--keypair-id",
                     "default", "--external-network-id", "public", "--labels", "runtime=podman")
    await server.cli("bay-create", "--name", "tb", "--baymodel", "pm", "--node-count", "1", "--wait")
    for name in pods:
        manifest = tmp_path / f"{server.data_dir.name}-{name}.yaml"
        manifest.write_text(POD.format(name=name, image=IMAGE))
        await server.cli("pod-create", "--manifest", str(manifest), "--bay", "tb")
    await wait_pods_running(server, "tb", set(pods), timeout=90)
    bay: dict[str, Any] = await server.cli_json("bay-show", "tb")
    return bay


def netns_of(bay_uuid: str) -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith(f"bp-{bay_uuid[:8]}-")]


def host_state(bay_uuid: str) -> dict[str, Any]:
    return {"pods": sorted(p["Name"] for p in pods_of(bay_uuid)), "netns": sorted(netns_of(bay_uuid)),
            "bridge": os.path.exists(f"/sys/class/net/{bridge_name(bay_uuid)}")}


def started_at(bay_uuid: str) -> dict[str, str]:
    listed = json.loads(subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label=bayport.cluster={bay_uuid}", "--format", "json"],
        capture_output=True, text=True, check=True).stdout or "[]")
    return {c["Id"]: str(c.get("StartedAt")) for c in listed}


@pytest.mark.timeout(420)
async def test_leftovers_of_a_deleted_data_dir_are_listed_and_removed_and_a_live_server_kept(
        tmp_path: Path) -> None:
    await require_podman(bayport_network=True)
    async with served(tmp_path / "gone") as gone, served(tmp_path / "live") as live:
        dead_bay = (await podman_bay(gone, tmp_path))["uuid"]
        live_bay = (await podman_bay(live, tmp_path))["uuid"]
        dead_owner = (tmp_path / "gone" / "owner-id").read_text().strip()
        live_before, live_started = host_state(live_bay), started_at(live_bay)
        assert live_before["pods"] and live_before["netns"] and live_before["bridge"]
        labels = pods_of(dead_bay)[0]["Labels"]
        assert labels["bayport.io/owner"] == dead_owner and labels["bayport.io/bay"] == dead_bay
        alias = Path(f"/sys/class/net/{bridge_name(dead_bay)}/ifalias").read_text().strip()
        assert alias == f"bayport owner={dead_owner} bay={dead_bay}"

        await gone.stop(signal.SIGKILL)
        shutil.rmtree(tmp_path / "gone")
        assert host_state(dead_bay)["pods"], "SIGKILL left the containers running"

        code, out, err = await live.run(BAYPORT, "admin", "leftovers", "--format", "json")
        assert code == 0, err
        listed = json.loads(out)
        mine = [row for row in listed if row["owner"] == dead_owner]
        assert {row["kind"] for row in mine} == {"podman-pod", "netns", "bridge", "route"}, listed
        assert all(row["bay"] == dead_bay and "is gone" in row["why"] for row in mine), mine
        assert not [row for row in listed if row["bay"] == live_bay], listed
        assert {row["name"] for row in mine if row["kind"] == "bridge"} == {bridge_name(dead_bay)}

        code, out, err = await live.run(BAYPORT, "admin", "leftovers", "--remove", "--format", "json")
        assert code == 0, err
        removed = {(row["kind"], row["name"]) for row in json.loads(out)}
        assert {(row["kind"], row["name"]) for row in mine} <= removed
        assert all(row["owner"] != "unowned" for row in json.loads(out))  # never without --include-unowned
        assert host_state(dead_bay) == {"pods": [], "netns": [], "bridge": False}
        routes = subprocess.run(["ip", "route", "show", "type", "unreachable"], capture_output=True,
                                text=True, check=True).stdout
        for row in mine:
            if row["kind"] == "route":
                assert row["name"] not in routes

        code, out, _ = await live.run(BAYPORT, "admin", "leftovers", "--format", "json")
        assert not [row for row in json.loads(out) if row["owner"] == dead_owner]
        assert host_state(live_bay) == live_before and started_at(live_bay) == live_started
        await wait_pods_running(live, "tb", {"web"}, timeout=30)
        await live.cli("bay-delete", "tb", "--wait")


async def _bay_status(server: Served, bay_uuid: str) -> str | None:
    async with server.http() as http:
        resp = await http.get(f"/v1/bays/{bay_uuid}")
        return None if resp.status_code == 404 else str(resp.json()["status"])


async def _wait_cleaned(server: Served, bay_uuid: str) -> None:
    deadline = time.monotonic() + 90
    state_dir = server.data_dir / "bays" / bay_uuid
    while True:
        status = await _bay_status(server, bay_uuid)
        host = host_state(bay_uuid)
        if status is None and not state_dir.exists() and host == {"pods": [], "netns": [], "bridge": False}:
            return
        assert time.monotonic() < deadline, (status, state_dir.exists(), host, server.log_text()[-3000:])
        await asyncio.sleep(0.5)


@pytest.mark.timeout(300)
async def test_a_bay_delete_cut_by_sigkill_is_finished_at_the_next_start(tmp_path: Path) -> None:
    await require_podman(bayport_network=True)
    async with served(tmp_path / "data") as server:
        bay = (await podman_bay(server, tmp_path, ("one", "two", "three")))["uuid"]
        delete = asyncio.create_task(server.cli("bay-delete", "tb", check=False))
        deadline = time.monotonic() + 30
        while await _bay_status(server, bay) != "DELETE_IN_PROGRESS":
            assert time.monotonic() < deadline, "the delete never started"
            await asyncio.sleep(0.02)
        await server.stop(signal.SIGKILL)
        await delete
        cut = await asyncio.to_thread(host_state, bay)
        print(f"killed during the delete; left behind: {cut}")
        await server.start()
        await _wait_cleaned(server, bay)


@pytest.mark.timeout(300)
async def test_a_bay_whose_row_went_while_the_server_was_down_is_removed_at_start(tmp_path: Path) -> None:
    await require_podman(bayport_network=True)
    async with served(tmp_path / "data") as server:
        bay = (await podman_bay(server, tmp_path))["uuid"]
        await server.stop(signal.SIGKILL)
        conn = sqlite3.connect(tmp_path / "data" / "bayport.db")
        conn.execute("PRAGMA foreign_keys = ON")     # the bay's pods, credentials ... go with it
        conn.execute("DELETE FROM bays WHERE uuid = ?", (bay,))
        conn.commit()
        conn.close()
        assert host_state(bay)["pods"] and (tmp_path / "data" / "bays" / bay).exists()
        await server.start()
        await _wait_cleaned(server, bay)
        assert "no longer in the database" in server.log_text()
