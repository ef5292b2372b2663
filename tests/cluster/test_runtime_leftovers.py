"""Ownership of host resources and which of them are leftovers (``runtime.ownership``,
``runtime.leftovers``), without touching the host: data dirs in tmp_path, the ledger in tmp_path,
a fake /sys/class/net, and a child process holding ``serve.lock`` as a running server does."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bayport.cluster.runtime import leftovers, ownership
from bayport.cluster.runtime.leftovers import OwnerCheck, Resource, classify
from bayport.cluster.runtime.ownership import Owner
from bayport.cluster.runtime.podman_net import CLAIM_METRIC

BAY = "8949f8cd-d74c-4f9d-b0f8-9ee1671ec4e5"
OTHER_BAY = "11111111-2222-4333-8444-555555555555"


@pytest.fixture(autouse=True)
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger"
    monkeypatch.setattr(ownership, "LEDGER_DIR", path)
    return path


def data_dir(tmp_path: Path, name: str, *bays: str) -> tuple[Path, str]:
    path = tmp_path / name
    owner = ownership.owner_id(path)
    for bay in bays:
        (path / "bays" / bay).mkdir(parents=True)
    return path, owner


@pytest.fixture
def held_lock(tmp_path: Path) -> Iterator[Path]:
    """A data dir whose serve.lock a separate process holds exclusively, as ``bayport serve``."""
    path, _ = data_dir(tmp_path, "live", BAY)
    (path / "serve.lock").touch()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(path / 'serve.lock')!r}, os.O_RDWR)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    yield path
    holder.kill()
    holder.wait()
    holder.stdout.close()


def test_owner_id_is_made_once_and_kept(tmp_path: Path) -> None:
    first = ownership.owner_id(tmp_path / "d")
    assert first == ownership.owner_id(tmp_path / "d") == ownership.read_owner_id(tmp_path / "d")
    assert ownership.read_owner_id(tmp_path / "missing") is None
    (tmp_path / "d" / "owner-id").write_text("")            # a crash's empty file is replaced
    assert ownership.owner_id(tmp_path / "d") not in ("", first)


def test_alias_round_trips_and_foreign_aliases_are_not_ours() -> None:
    owner = Owner("o-1", Path("/srv/data"), BAY)
    assert ownership.parse_alias(owner.alias()) == ("o-1", BAY)
    assert len(owner.alias()) <= ownership.ALIAS_MAX
    for foreign in ("", "uplink to rack 3", "bayport", "bayport owner=x"):
        assert ownership.parse_alias(foreign) is None
    assert owner.label_args()[:2] == ["--label", f"{ownership.LABEL_OWNER}=o-1"]


def test_ledger_records_and_forgets(tmp_path: Path) -> None:
    owner = Owner("o-1", tmp_path / "data", BAY)
    ownership.record("route", "10.128.0.0/16", owner)
    ownership.record("netns", "bp-8949f8cd-x", owner)
    assert ownership.recorded("route") == {"10.128.0.0/16": owner}
    assert ownership.known_owner_dirs() == {"o-1": tmp_path / "data"}
    ownership.forget("route", "10.128.0.0/16")
    assert ownership.recorded("route") == {}
    assert list(ownership.recorded("netns")) == ["bp-8949f8cd-x"]


def test_gone_data_dir_and_replaced_owner_are_leftovers(tmp_path: Path) -> None:
    replaced, _ = data_dir(tmp_path, "replaced", BAY)      # same path, new owner id
    resources = [Resource("podman-pod", "a", "gone-owner", tmp_path / "deleted", BAY),
                 Resource("podman-pod", "b", "old-owner", replaced, BAY)]
    found = classify(resources, {}, OwnerCheck(hold=False))
    assert [(lo.resource.name, lo.why) for lo in found] == [
        ("a", f"data dir {tmp_path / 'deleted'} is gone"),
        ("b", f"data dir {replaced} belongs to another owner now")]
    assert not any(lo.unowned for lo in found)


def test_deleted_bay_of_an_idle_owner_is_a_leftover_but_its_other_bays_are_not(tmp_path: Path) -> None:
    path, owner = data_dir(tmp_path, "idle", BAY)
    found = classify([Resource("bridge", "bpb1", owner, None, BAY),
                      Resource("bridge", "bpb2", owner, None, OTHER_BAY)],
                     {owner: path}, OwnerCheck(hold=False))
    assert [(lo.resource.name, lo.why) for lo in found] == [
        ("bpb2", f"bay {OTHER_BAY} is not a bay of {path} any more")]


def test_a_bay_kept_only_by_its_database_row_is_not_a_leftover(tmp_path: Path) -> None:
    path, owner = data_dir(tmp_path, "db")
    import sqlite3

    conn = sqlite3.connect(path / "bayport.db")
    conn.execute("CREATE TABLE bays (uuid TEXT PRIMARY KEY)")
    conn.execute("INSERT INTO bays VALUES (?)", (BAY,))
    conn.commit()
    conn.close()
    assert leftovers.bays_of(path) == {BAY}
    assert classify([Resource("route", "10.128.0.0/16", owner, path, BAY)], {}, OwnerCheck(hold=False)) == []


def test_a_running_servers_resources_are_never_leftovers(held_lock: Path) -> None:
    owner = ownership.read_owner_id(held_lock)
    assert owner is not None
    resources = [Resource("podman-pod", "p", owner, held_lock, OTHER_BAY),   # even a bay it lacks
                 Resource("netns", "n", owner, held_lock, BAY)]
    check = OwnerCheck(hold=True)
    assert classify(resources, {}, check) == []
    check.close()


def test_holding_an_idle_owner_keeps_a_server_from_starting_on_it(tmp_path: Path) -> None:
    path, owner = data_dir(tmp_path, "idle", BAY)
    (path / "serve.lock").touch()
    check = OwnerCheck(hold=True)
    assert check.state(owner, path) == ("idle", {BAY})
    fd = os.open(path / "serve.lock", os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)       # what serve's _hold_data_dir does
        check.close()
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def test_unowned_and_unresolvable_owners(tmp_path: Path) -> None:
    found = classify([Resource("bridge", "bpbaa6059f17e"), Resource("bridge", "bpb2", "who", None, BAY)],
                     {}, OwnerCheck(hold=False))
    assert [(lo.unowned, lo.why) for lo in found] == [
        (True, "unowned: carries no owner label"),
        (False, "owner who: its data dir is not known on this host")]


def test_scan_bridges_reads_aliases_and_skips_what_is_not_ours(tmp_path: Path) -> None:
    sys_net = tmp_path / "sys"
    for name, alias, bridge in (("bpbaa6059f17e", "", True),
                                ("bpb0123456789", f"bayport owner=o bay={BAY}", True),
                                ("bp2c7e014b666", "", False), ("eth0", "", True), ("docker0", "", True)):
        (sys_net / name).mkdir(parents=True)
        (sys_net / name / "ifalias").write_text(alias + "\n")
        if bridge:
            (sys_net / name / "bridge").mkdir()
    assert leftovers.scan_bridges(sys_net) == [Resource("bridge", "bpb0123456789", "o", None, BAY),
                                               Resource("bridge", "bpbaa6059f17e")]


def test_scan_netns_and_routes_take_owners_from_the_ledger(tmp_path: Path) -> None:
    owner = Owner("o", tmp_path / "d", BAY)
    ownership.record("netns", "bp-8949f8cd-web-1", owner)
    ownership.record("route", "10.129.0.0/16", owner)
    assert leftovers.scan_netns(["bp-8949f8cd-web-1", "bp-11111111-db-2", "cni-1234", "other"]) == [
        Resource("netns", "bp-11111111-db-2"),
        Resource("netns", "bp-8949f8cd-web-1", "o", owner.data_dir, BAY)]
    listing = json.dumps([{"type": "unreachable", "dst": "10.129.0.0/16", "metric": CLAIM_METRIC},
                          {"type": "unreachable", "dst": "10.5.0.0/16", "metric": 100},
                          {"type": "unreachable", "dst": "default", "metric": CLAIM_METRIC}])
    assert leftovers.parse_routes(listing) == ["10.129.0.0/16"]
    assert leftovers.parse_routes("not json") == []


async def test_remove_goes_in_dependency_order_and_reports_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []

    async def fake_remove(res: Resource) -> None:
        if res.name == "stuck":
            raise OSError("busy")
        order.append(res.kind)

    monkeypatch.setattr(leftovers, "remove_one", fake_remove)
    items = [leftovers.Leftover(Resource(kind, name), "x") for kind, name in
             (("route", "r"), ("bridge", "b"), ("netns", "stuck"), ("podman-pod", "p"), ("netns", "n"))]
    failed: list[str] = []
    done = await leftovers.remove(items, on_error=lambda lo, exc: failed.append(f"{lo.resource.name}: {exc}"))
    assert order == ["podman-pod", "netns", "bridge", "route"]
    assert len(done) == 4 and failed == ["stuck: busy"]
