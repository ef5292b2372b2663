"""Host resources of embedded bays whose owner no longer exists, found and removed.

``scan`` lists what the podman runtime makes on this host — podman pods and containers (label
``bayport.cluster``), bridges ``bp…``, network namespaces ``bp-…``, and the pod pools' claim
routes (unreachable, metric ``CLAIM_METRIC``) — each with the owner ``ownership`` recorded for it.
``classify`` keeps the leftovers: an owner whose data dir is gone (or holds another owner id
now), or a bay that is no longer a bay of its live data dir. A data dir whose ``serve.lock`` is
held belongs to a running server, whose resources are never touched; resources without an owner
are "unowned" (made by a version before owners, or by something else using our names) and only
removed when asked. ``remove`` deletes in dependency order. ``bayport admin leftovers``
(``cli.admin``) prints and removes them; ``drivers.local`` removes a server's own at its start.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from bayport.cluster.runtime import ownership
from bayport.cluster.runtime.ownership import LABEL_BAY, LABEL_OWNER, LABEL_OWNER_DIR
from bayport.cluster.runtime.podman_cli import CommandError, host_env, podman, podman_json, run
from bayport.cluster.runtime.podman_net import (
    CLAIM_METRIC,
    NETNS_DIR,
    delete_bridge,
    delete_netns,
    release_pool,
)

LABEL_CLUSTER = "bayport.cluster"       # as podman_cluster; every podman object of an embedded bay
SYS_NET = Path("/sys/class/net")
BRIDGE_NAME = re.compile(r"^bp[0-9a-f]{8,13}$")     # bpb<10 hex> now; bp<11 hex> before owners
NETNS_NAME = re.compile(r"^bp-[0-9a-z]{1,8}-")
KINDS = ("podman-pod", "podman-container", "netns", "bridge", "route")   # removal order


@dataclass(frozen=True, slots=True)
class Resource:
    """One host resource and, when it carries one, its owner."""

    kind: str                     # one of KINDS
    name: str
    owner: str | None = None      # owner id
    owner_dir: Path | None = None
    bay: str | None = None


@dataclass(frozen=True, slots=True)
class Leftover:
    resource: Resource
    why: str
    unowned: bool = False


# --- owners ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def owner_lock(data_dir: Path) -> Iterator[bool]:
    """True when no server holds ``data_dir/serve.lock``; it is then held (shared) here for the
    block, so no ``bayport serve`` of that data dir starts while we remove its leftovers."""
    try:
        fd = os.open(data_dir / "serve.lock", os.O_RDONLY)
    except OSError:
        yield True                # no lock file: nothing ever served there
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def bays_of(data_dir: Path) -> set[str]:
    """The bays a data dir still has: a state dir under ``bays/``, or a row in its SQLite database
    (a bay whose row is there is kept, whatever its files say)."""
    found: set[str] = set()
    with contextlib.suppress(OSError):
        found.update(p.name for p in (data_dir / "bays").iterdir() if p.is_dir())
    database = data_dir / "bayport.db"
    if database.exists():
        with contextlib.suppress(sqlite3.Error):
            conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
            try:
                found.update(str(row[0]) for row in conn.execute("SELECT uuid FROM bays"))
            finally:
                conn.close()
    return found


class OwnerCheck:
    """Answers, once per owner, whether it still exists; holds the locks of idle owners' data
    dirs until ``close`` (so a removal cannot race a server starting on them)."""

    def __init__(self, *, hold: bool) -> None:
        self.hold = hold
        self._stack = contextlib.ExitStack()
        self._answers: dict[str, tuple[str, set[str]] | None] = {}

    def state(self, owner: str, data_dir: Path) -> tuple[str, set[str]] | None:
        """None when the owner is gone; else ("live" | "idle", its bays)."""
        if owner not in self._answers:
            self._answers[owner] = self._probe(owner, data_dir)
        return self._answers[owner]

    def _probe(self, owner: str, data_dir: Path) -> tuple[str, set[str]] | None:
        if ownership.read_owner_id(data_dir) != owner:
            return None
        if self.hold:
            free = self._stack.enter_context(owner_lock(data_dir))
        else:
            with owner_lock(data_dir) as free:
                pass
        return ("idle" if free else "live"), bays_of(data_dir)

    def close(self) -> None:
        self._stack.close()


def classify(resources: Iterable[Resource], owner_dirs: Mapping[str, Path], check: OwnerCheck
             ) -> list[Leftover]:
    """The leftovers among ``resources``. ``owner_dirs`` resolves owner ids whose resources carry
    only the id (bridge aliases)."""
    found = []
    for res in resources:
        if res.owner is None:
            found.append(Leftover(res, "unowned: carries no owner label", unowned=True))
            continue
        data_dir = res.owner_dir or owner_dirs.get(res.owner)
        if data_dir is None:
            found.append(Leftover(res, f"owner {res.owner}: its data dir is not known on this host"))
            continue
        state = check.state(res.owner, data_dir)
        if state is None:
            why = (f"data dir {data_dir} is gone" if not data_dir.exists()
                   else f"data dir {data_dir} belongs to another owner now")
            found.append(Leftover(res, why))
            continue
        liveness, bays = state
        if liveness == "live" or res.bay is None or res.bay in bays:
            continue
        found.append(Leftover(res, f"bay {res.bay} is not a bay of {data_dir} any more"))
    return found


# --- scanning ----------------------------------------------------------------------------------------


def _owner_of(labels: Mapping[str, str]) -> tuple[str | None, Path | None, str | None]:
    owner = labels.get(LABEL_OWNER) or None
    owner_dir = labels.get(LABEL_OWNER_DIR)
    return owner, Path(owner_dir) if owner_dir else None, labels.get(LABEL_BAY) or labels.get(LABEL_CLUSTER)


async def scan_podman() -> list[Resource]:
    found: list[Resource] = []
    label = f"label={LABEL_CLUSTER}"
    try:
        pods = await podman_json("pod", "ps", "--filter", label, "--format", "json") or []
        containers = await podman_json("ps", "-a", "--filter", label, "--format", "json") or []
    except (CommandError, ValueError):
        return found
    pod_ids = set()
    for pod in pods:
        pod_ids.add(str(pod.get("Id", "")))
        found.append(Resource("podman-pod", str(pod["Name"]), *_owner_of(pod.get("Labels") or {})))
    for container in containers:
        if str(container.get("Pod") or "") in pod_ids and container.get("Pod"):
            continue          # removed with its pod
        names = container.get("Names") or [container.get("Id", "")]
        found.append(Resource("podman-container", str(names[0]),
                              *_owner_of(container.get("Labels") or {})))
    return found


def scan_netns(names: Iterable[str] | None = None) -> list[Resource]:
    if names is None:
        try:
            names = os.listdir(NETNS_DIR)
        except OSError:
            names = []
    recorded = ownership.recorded("netns")
    return [_recorded("netns", name, recorded) for name in sorted(names) if NETNS_NAME.match(name)]


def _recorded(kind: str, name: str, recorded: Mapping[str, ownership.Owner]) -> Resource:
    owner = recorded.get(name)
    if owner is None:
        return Resource(kind, name)
    return Resource(kind, name, owner.id, owner.data_dir, owner.bay)


def scan_bridges(sys_net: Path = SYS_NET) -> list[Resource]:
    found: list[Resource] = []
    try:
        names = sorted(os.listdir(sys_net))
    except OSError:
        return found
    for name in names:
        if not BRIDGE_NAME.match(name) or not (sys_net / name / "bridge").exists():
            continue
        try:
            alias = (sys_net / name / "ifalias").read_text()
        except OSError:
            alias = ""
        parsed = ownership.parse_alias(alias)
        found.append(Resource("bridge", name, *(parsed[0], None, parsed[1]) if parsed else ()))
    return found


def parse_routes(text: str) -> list[str]:
    """Destinations of the claim routes in ``ip -j route show type unreachable`` output."""
    try:
        routes = json.loads(text or "[]")
    except ValueError:
        return []
    return [str(r["dst"]) for r in routes if isinstance(r, dict) and r.get("metric") == CLAIM_METRIC
            and r.get("dst") and "/" in str(r["dst"])]


async def scan_routes() -> list[Resource]:
    try:
        out = await run(["ip", "-j", "route", "show", "type", "unreachable"], env=host_env(), timeout=30)
    except CommandError:
        return []
    recorded = ownership.recorded("route")
    return [_recorded("route", dst, recorded) for dst in parse_routes(out.decode())]


async def scan() -> list[Resource]:
    """Every host resource that looks like an embedded bay's, with its owner where known."""
    return [*await scan_podman(), *scan_netns(), *scan_bridges(), *await scan_routes()]


def owner_dirs(resources: Iterable[Resource]) -> dict[str, Path]:
    """owner id → data dir, from the ledger and from every resource that carries both."""
    dirs = ownership.known_owner_dirs()
    for res in resources:
        if res.owner and res.owner_dir is not None:
            dirs.setdefault(res.owner, res.owner_dir)
    return dirs


async def find(check: OwnerCheck) -> list[Leftover]:
    resources = await scan()
    return classify(resources, owner_dirs(resources), check)


# --- removal -------------------------------------------------------------------------------------------


async def remove_one(res: Resource) -> None:
    if res.kind == "podman-pod":
        with contextlib.suppress(CommandError):
            await podman("pod", "rm", "-f", "-t", "0", res.name)
    elif res.kind == "podman-container":
        with contextlib.suppress(CommandError):
            await podman("rm", "-f", "-t", "0", res.name)
    elif res.kind == "netns":
        await delete_netns(res.name)
    elif res.kind == "bridge":
        await delete_bridge(res.name)
    elif res.kind == "route":
        await release_pool(res.name)
    else:
        raise ValueError(f"unknown resource kind {res.kind!r}")


async def remove(leftovers: Iterable[Leftover], *, on_error: Callable[[Leftover, Exception], None]
                 ) -> list[Leftover]:
    """Remove ``leftovers``: pods before namespaces before bridges before routes. Returns those
    removed; ``on_error`` hears about the others."""
    done = []
    for leftover in sorted(leftovers, key=lambda lo: KINDS.index(lo.resource.kind)):
        try:
            await remove_one(leftover.resource)
        except Exception as exc:     # one stubborn resource must not keep the others
            on_error(leftover, exc)
            continue
        done.append(leftover)
    return done
