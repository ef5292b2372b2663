"""The local driver: every bay is an embedded Kubernetes-API-compatible cluster served
on loopback by this conductor process (package ``bayport.cluster``).

Its state lives in the bay's directory under the data dir (``bays/<uuid>/``): the object
journal (``cluster.journal``), the serving certificate, the ports it serves on and its bearer
tokens (admin, reader, pod-network controller; each a 0600 file). A process that stops
(``close``) leaves all of it, and the pods running; the next host of the bay (this process
restarted, or another conductor sharing the data dir) starts the cluster from it at the same
address with every object, and its nodes adopt the running pods. Only ``delete`` removes it.
The conductor reaches the cluster over HTTP like any other, so everything above this module is
the production code path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from uuid import UUID

from sqlalchemy.engine import make_url

from bayport import errors
from bayport.cluster.host import ClusterSpec, EmbeddedCluster
from bayport.cluster.runtime import leftovers, ownership
from bayport.cluster.runtime.ownership import owner_id
from bayport.cluster.runtime.podman_cluster import announce_api_server, sweep_host
from bayport.cluster.runtime.podman_volumes import HOST_PATH_LABEL
from bayport.cluster.runtime.select import RUNTIME_LABEL, choose_runtime
from bayport.config import Settings
from bayport.drivers.base import Credentials, Driver, ProvisionResult
from bayport.files import private_dir
from bayport.objects.bay import Bay, BayModel

log = logging.getLogger(__name__)

# Node addresses come from a /24 per bay inside 10.0.0.0/8, picked from the bay's uuid so a
# re-hosted bay keeps its addresses.
NODE_SUPERNET = ipaddress.ip_network("10.0.0.0/8")


def journal_url(settings: Settings) -> str | None:
    """Where embedded clusters keep their objects: beside Bayport's own rows when those are in
    PostgreSQL (production: any conductor can re-host a bay with everything in it), else in a
    SQLite file in the bay's state dir (``bayport serve``)."""
    url = make_url(settings.effective_database_url)
    if not url.drivername.startswith("postgresql"):
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def node_cidr_for(bay_uuid: str) -> str:
    index = int(hashlib.sha256(bay_uuid.encode()).hexdigest(), 16) % (2**16)
    network = int(NODE_SUPERNET.network_address) + (index << 8)
    return f"{ipaddress.ip_address(network)}/24"


# One file per credential of the bay's cluster: admin (conductor, members, admins), read-only
# (readers' kubeconfigs) and the pod-network controller's (the only one that may set kuryr.org/*).
TOKEN_FILES = {"admin": "token", "reader": "reader-token", "network": "network-token"}


def _bay_token(state_dir: Path, role: str = "admin") -> str:
    """One of the bay's bearer tokens, made once and kept (0600) so kubeconfigs outlive restarts.

    Written to a private temporary file and linked into place, so a conductor sharing the data
    dir reads either no file or a whole one, and the first to link wins.
    """
    path = state_dir / TOKEN_FILES[role]
    with contextlib.suppress(FileNotFoundError):
        text = path.read_text().strip()
        if text:
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)    # written by an older version with the umask's mode
            return text
    private_dir(state_dir.parent)  # data_dir/bays: other users need not even see which bays exist
    private_dir(state_dir)
    token = secrets.token_urlsafe(32)
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=f".{path.name}-")   # mode 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(token)
        try:
            os.link(tmp, path)
        except FileExistsError:
            if path.read_text().strip():
                return path.read_text().strip()
            os.replace(tmp, path)    # an empty file a crash left behind
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return token


def bay_dir(data_dir: Path, bay_uuid: str) -> Path:
    """data_dir/bays/<uuid>: only a canonical uuid names it, so no bay row (however it was written)
    makes the driver create, or delete, a directory elsewhere."""
    try:
        canonical = str(UUID(bay_uuid))
    except (ValueError, TypeError, AttributeError):
        canonical = ""
    if not canonical or canonical != bay_uuid:
        raise errors.InvalidInput(f"bay uuid {bay_uuid!r} is not a canonical uuid", field="uuid")
    return data_dir / "bays" / canonical


class LocalDriver(Driver):
    name = "local"
    # Node i has address .(i+10) of the bay's node /24 and pod /24 number i of its /16 pool.
    max_nodes = 240
    # Set by the process that also runs the pod-network controller: only then may nodes
    # wait for port annotations (otherwise nothing would ever write them).
    pod_network_enabled: bool = False

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.clusters: dict[str, EmbeddedCluster] = {}

    def _spec(self, bay: Bay, baymodel: BayModel) -> ClusterSpec:
        data_dir = bay_dir(self.settings.data_dir, bay.uuid)
        labels = {**baymodel.labels, **bay.labels}
        labels.pop(HOST_PATH_LABEL, None)  # the operator's call: no user grants pods the host's files
        return ClusterSpec(
            name=(bay.name or bay.uuid[:8]).lower(), uid=bay.uuid, token=_bay_token(data_dir),
            reader_token=_bay_token(data_dir, "reader"), network_token=_bay_token(data_dir, "network"),
            master_count=bay.master_count, node_count=bay.node_count,
            node_cidr=node_cidr_for(bay.uuid), data_dir=data_dir, pod_cidr=self._pod_cidr(bay),
            owner_id=owner_id(self.settings.data_dir), owner_dir=self.settings.data_dir,
            wait_for_port_annotation=(self.pod_network_enabled
                                      and (baymodel.network_driver or "bayport") == "bayport"),
            port_wait_seconds=self.settings.port_wait_seconds, labels=labels,
            store_sync=self.settings.cluster_sync, store_url=journal_url(self.settings))

    @staticmethod
    def _pod_cidr(bay: Bay) -> str:
        return bay.pod_pool or ClusterSpec.pod_cidr

    def _result(self, cluster: EmbeddedCluster, baymodel: BayModel) -> ProvisionResult:
        # TLS unless the template disables it, as Magnum's tls_disabled; kubectl sends a
        # bearer token only over TLS, so a plain-HTTP bay is for API clients only.
        identity = cluster.identity()
        if cluster.https_url and identity is not None and not baymodel.tls_disabled:
            server, ca_data = cluster.https_url, identity.ca_data
        else:
            server, ca_data = cluster.url, None
        return ProvisionResult(
            api_address=server, master_addresses=cluster.master_addresses(),
            node_addresses=cluster.node_addresses(),
            credentials=Credentials(server=server, token=cluster.spec.token, ca_data=ca_data,
                                    reader_token=cluster.spec.reader_token,
                                    network_token=cluster.spec.network_token),
            stack_id=None, coe_version=cluster.spec.version)

    def hosts(self, bay_uuid: str) -> bool:
        return bay_uuid in self.clusters

    def cluster(self, bay_uuid: str) -> EmbeddedCluster | None:
        return self.clusters.get(bay_uuid)

    async def create(self, bay: Bay, baymodel: BayModel) -> ProvisionResult:
        cluster = self.clusters.get(bay.uuid)
        note = None
        if cluster is None:
            spec = self._spec(bay, baymodel)
            # label runtime = podman | simulated | auto: real containers when podman works. Without the
            # label, Settings.default_runtime decides ("auto" by default, "simulated" for test stacks
            # whose manifests name images this machine cannot pull).
            default = self.settings.default_runtime
            choice = await choose_runtime(spec.labels.get(RUNTIME_LABEL, default),
                                          bayport_network=spec.wait_for_port_annotation)
            spec.runtime, note = choice.runtime, choice.note
            cluster = EmbeddedCluster(spec)
            await cluster.start()
            announce_api_server(bay.uuid, cluster.url)
            self.clusters[bay.uuid] = cluster
            log.info("bay %s: embedded cluster serving at %s (%s)", bay.uuid, cluster.url, note)
        if len(cluster.node_addresses()) != bay.node_count:
            await cluster.resize(bay.node_count)
        result = self._result(cluster, baymodel)
        result.notes.append(note or f"runtime {cluster.spec.runtime}")
        if cluster.restored:
            result.notes.append(f"{cluster.restored} objects restored")
        return result

    async def resize(self, bay: Bay, baymodel: BayModel, node_count: int) -> ProvisionResult:
        cluster = self.clusters.get(bay.uuid)
        if cluster is None:
            # Hosted by a conductor that is gone: re-host with the new size.
            return await self.create(bay.model_copy(update={"node_count": node_count}), baymodel)
        await cluster.resize(node_count)
        return self._result(cluster, baymodel)

    async def delete(self, bay: Bay, baymodel: BayModel) -> None:
        """The bay is gone: its cluster, its containers and its state directory. A delete this
        process resumes for a host that was killed (recovery) finds no cluster here, but maybe
        that host's containers, namespaces, bridge and route: those go too."""
        cluster = self.clusters.pop(bay.uuid, None)
        if cluster is not None:
            await cluster.stop()
        else:
            await self._sweep_host(bay.uuid, bay.pod_pool or self._recorded_pool(bay.uuid))
        await asyncio.to_thread(shutil.rmtree, bay_dir(self.settings.data_dir, bay.uuid), True)

    @staticmethod
    async def _sweep_host(bay_uuid: str, pod_cidr: str | None) -> None:
        """Host resources exist only where the podman runtime could run: as root."""
        if os.geteuid() == 0 and shutil.which("podman") is not None:
            await sweep_host(bay_uuid, pod_cidr)

    async def remove_orphans(self, bays: set[str]) -> list[str]:
        """Remove the state dirs (and host resources) of bays this data dir holds but the
        database does not: the row went while no server ran (a delete killed between its
        row and its files, a database restored from a backup). Only the sole server of the data
        dir may call it (``bayport serve`` holds its lock); returns the bay uuids removed."""
        removed: list[str] = []
        try:
            entries = sorted((self.settings.data_dir / "bays").iterdir())
        except OSError:
            return removed
        for entry in entries:
            try:
                canonical = str(UUID(entry.name))
            except ValueError:
                continue
            if canonical != entry.name or canonical in bays or canonical in self.clusters:
                continue
            log.warning("bay %s: not in the database any more; removing its state and containers",
                        canonical)
            await self._sweep_host(canonical, self._recorded_pool(canonical))
            await asyncio.to_thread(shutil.rmtree, entry, True)
            removed.append(canonical)
        await self._remove_strays(bays)
        return removed

    async def _remove_strays(self, bays: set[str]) -> None:
        """Host resources labelled with this data dir's owner but of a bay it does not have
        (their state dir went before them)."""
        if os.geteuid() != 0 or shutil.which("podman") is None:
            return
        mine = owner_id(self.settings.data_dir)
        strays = [leftovers.Leftover(r, "bay not in the database") for r in await leftovers.scan()
                  if r.owner == mine and r.bay and r.bay not in bays and r.bay not in self.clusters]
        for lo in strays:
            log.warning("removing %s %s of bay %s: the bay is not in the database", lo.resource.kind,
                        lo.resource.name, lo.resource.bay)
        await leftovers.remove(strays, on_error=lambda lo, exc: log.warning(
            "could not remove %s %s: %s", lo.resource.kind, lo.resource.name, exc))

    @staticmethod
    def _recorded_pool(bay_uuid: str) -> str | None:
        """The pod pool a bay claimed on this host, from the host ledger (its row may be gone):
        None when unknown, and then no route is touched — it could be another server's."""
        for cidr, owner in ownership.recorded("route").items():
            if owner.bay == bay_uuid:
                return cidr
        return None

    async def delete_local(self, bay_uuid: str) -> None:
        """Stop this process's cluster of a bay without touching the bay or its state (a host's
        death, as the next host sees it): whoever re-hosts the bay resumes it."""
        cluster = self.clusters.pop(bay_uuid, None)
        if cluster is not None:
            await cluster.stop(keep=True)

    async def health(self, bay: Bay, baymodel: BayModel) -> str:
        return "HEALTHY" if bay.uuid in self.clusters else "UNKNOWN"

    async def remove_all(self) -> None:
        """Stop every hosted cluster and remove its containers, keeping the state on disk: what a
        test or benchmark does at its end (``close``, a server's shutdown, leaves them running)."""
        for uuid in list(self.clusters):
            await self.clusters.pop(uuid).stop()

    async def close(self) -> None:
        """Process shutdown: stop serving, keep every bay's state and running pods."""
        for uuid in list(self.clusters):
            cluster = self.clusters.pop(uuid)
            await cluster.stop(keep=True)
