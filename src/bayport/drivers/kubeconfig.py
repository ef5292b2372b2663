"""The kubeconfig driver: register a Kubernetes cluster that already exists as a bay.

Nothing is provisioned. ``create`` reads the kubeconfig from the bay's labels —
``kubeconfig`` (base64 of the YAML) or ``kubeconfig_path`` (a file the operator put
under ``<data_dir>/kubeconfigs/<project_id>/``), optionally ``kubeconfig_context`` —
checks that the API answers with these credentials, and records its address, nodes
and version. A kubeconfig a member pasted into a label is a URL Bayport fetches on their
behalf, so its server must pass ``bayport.egress`` (public, or in
``Settings.cluster_allowed_networks``) both by name before connecting and by the peer of the
connection made, and a server's answer reaches ``status_reason`` only as a Kubernetes
Status message, never as raw text: otherwise a label pointing at the host's loopback
services reads them back. Kubeconfigs the operator placed under ``kubeconfig_path`` are
trusted. From then on the conductor talks to the cluster like to any other bay,
with the credentials returned here (the original kubeconfig included). An
unreachable cluster is a ``TemporaryError`` (retried until the bay's deadline);
refused credentials or a certificate that does not verify fail the bay at once.
Parsing and TLS live in ``kubeaccess.py``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bayport import errors
from bayport.drivers.base import Credentials, Driver, ProvisionResult
from bayport.drivers.kubeaccess import ClusterAccess, parse_kubeconfig
from bayport.egress import EgressPolicy, RefusedAddress, resolve_permitted
from bayport.objects.bay import Bay, BayModel

log = logging.getLogger(__name__)

KUBECONFIG_LABEL = "kubeconfig"
PATH_LABEL = "kubeconfig_path"
CONTEXT_LABEL = "kubeconfig_context"
CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
ADDRESS_PREFERENCE = ("InternalIP", "ExternalIP", "Hostname")


def control_plane(node: dict[str, Any]) -> bool:
    labels = node.get("metadata", {}).get("labels") or {}
    return any(label in labels for label in CONTROL_PLANE_LABELS)


def node_address(node: dict[str, Any]) -> str:
    addresses = {a.get("type"): a.get("address") for a in node.get("status", {}).get("addresses") or []}
    for kind in ADDRESS_PREFERENCE:
        if addresses.get(kind):
            return str(addresses[kind])
    return str(node.get("metadata", {}).get("name", ""))


def _tls_verification_failed(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _status_message(response: httpx.Response) -> str:
    """A Kubernetes Status's message, else only the reason phrase: never the raw body."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict) and body.get("kind") == "Status" and body.get("message"):
        return str(body["message"])[:300]
    return response.reason_phrase


def _peer_address(response: httpx.Response) -> str | None:
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    return str(peer[0]) if peer else None


class KubeconfigDriver(Driver):
    name = "kubeconfig"
    # How soon to look again at a cluster that did not answer; the bay's deadline bounds the total.
    retry_delay: float = 5.0
    request_timeout: float = 10.0

    def kubeconfig_dir(self, project_id: str) -> Path:
        """Where an operator puts kubeconfigs a project may register by ``kubeconfig_path``."""
        base = self.settings.data_dir / "kubeconfigs"
        return base / project_id if project_id else base

    def _kubeconfig(self, bay: Bay, labels: dict[str, str]) -> tuple[str, Path | None]:
        """The kubeconfig text, and the directory its file references are relative to."""
        if labels.get(KUBECONFIG_LABEL):
            try:
                return base64.b64decode(labels[KUBECONFIG_LABEL], validate=True).decode(), None
            except (binascii.Error, ValueError) as exc:
                raise errors.PermanentError(
                    f"the {KUBECONFIG_LABEL!r} label must hold the kubeconfig YAML in base64") from exc
        if labels.get(PATH_LABEL):
            root = self.kubeconfig_dir(bay.project_id).resolve()
            file = (root / Path(labels[PATH_LABEL]).expanduser()).resolve()
            if not file.is_relative_to(root):
                raise errors.PermanentError(
                    f"{PATH_LABEL} must name a file under {root}, where the operator keeps the "
                    "kubeconfigs this project may register")
            try:
                return file.read_text(encoding="utf-8"), file.parent
            except OSError as exc:
                raise errors.PermanentError(
                    f"cannot read the kubeconfig {file}: {exc.strerror or exc}") from exc
        raise errors.PermanentError(
            f"the kubeconfig driver needs a {KUBECONFIG_LABEL!r} label (base64 of the kubeconfig) or "
            f"a {PATH_LABEL!r} label")

    def _access(self, bay: Bay, baymodel: BayModel) -> tuple[ClusterAccess, str, EgressPolicy]:
        """The access, its kubeconfig text, and where it may connect (operator files: anywhere)."""
        labels = {**baymodel.labels, **bay.labels}
        text, base_dir = self._kubeconfig(bay, labels)
        access = parse_kubeconfig(text, context=labels.get(CONTEXT_LABEL) or None, base_dir=base_dir)
        policy = (EgressPolicy(allow_private=True) if base_dir is not None else
                  EgressPolicy.of(allowed=self.settings.cluster_allowed_networks))
        return access, text, policy

    async def _check_destination(self, access: ClusterAccess, policy: EgressPolicy) -> None:
        parts = urlsplit(access.server)
        host = parts.hostname or ""
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            await resolve_permitted(host, port, policy)
        except (RefusedAddress, ValueError) as exc:
            raise errors.PermanentError(
                f"the kubeconfig's server {access.server} is refused: {exc}. An operator can allow "
                "the cluster's network with BAYPORT_CLUSTER_ALLOWED_NETWORKS") from exc

    async def _get(self, client: httpx.AsyncClient, access: ClusterAccess, path: str,
                   policy: EgressPolicy) -> Any:
        url = f"{access.server}{path}"
        try:
            response = await client.get(url, extensions=access.request_extensions())
        except httpx.TransportError as exc:
            failed = _tls_verification_failed(exc)
            if failed is not None:
                raise errors.PermanentError(
                    f"the cluster at {access.server} presented a certificate that does not verify "
                    f"against the kubeconfig's certificate authority: {failed.verify_message}") from exc
            raise errors.TemporaryError(
                f"the cluster at {access.server} is unreachable: {type(exc).__name__}: {exc}",
                delay=self.retry_delay) from exc
        peer = _peer_address(response)
        if peer is not None and not policy.permits(ipaddress.ip_address(peer)):
            # The name passed the check but the connection landed elsewhere (DNS rebinding).
            raise errors.PermanentError(
                f"the kubeconfig's server {access.server} connected to {peer}, a non-public "
                "address; the answer was discarded")
        if response.status_code in (401, 403):
            raise errors.PermanentError(
                f"the cluster at {access.server} refused the credentials ({response.status_code} on "
                f"{path}): {_status_message(response)}")
        if response.status_code >= 500 or response.status_code == 429:
            raise errors.TemporaryError(
                f"the cluster at {access.server} answered {response.status_code} on {path}: "
                f"{_status_message(response)}", delay=self.retry_delay)
        if not response.is_success:
            raise errors.PermanentError(
                f"the cluster at {access.server} answered {response.status_code} on {path}: "
                f"{_status_message(response)}")
        try:
            return response.json()
        except ValueError as exc:
            raise errors.PermanentError(
                f"{url} did not answer with JSON; is it a Kubernetes API server?") from exc

    def _client(self, access: ClusterAccess) -> httpx.AsyncClient:
        verify: ssl.SSLContext | bool = (access.ssl_context() if access.server.startswith("https://")
                                         else True)
        return httpx.AsyncClient(verify=verify, headers=access.headers(), timeout=self.request_timeout)

    async def create(self, bay: Bay, baymodel: BayModel) -> ProvisionResult:
        access, text, policy = self._access(bay, baymodel)
        await self._check_destination(access, policy)
        async with self._client(access) as client:
            version = await self._get(client, access, "/version", policy)
            nodes = await self._get(client, access, "/api/v1/nodes", policy)
        items = [n for n in nodes.get("items") or [] if isinstance(n, dict)]
        masters = [node_address(n) for n in items if control_plane(n)]
        workers = [node_address(n) for n in items if not control_plane(n)]
        git_version = version.get("gitVersion") if isinstance(version, dict) else None
        log.info("bay %s: registered the cluster at %s (%s, %d masters, %d nodes)", bay.uuid,
                 access.server, git_version, len(masters), len(workers))
        notes = [] if items else ["the cluster reports no nodes"]
        return ProvisionResult(
            api_address=access.server, master_addresses=masters, node_addresses=workers,
            credentials=Credentials(server=access.server, token=access.token, ca_data=access.ca_data,
                                    kubeconfig=text),
            stack_id=None, coe_version=str(git_version) if git_version else None,
            notes=[f"registered {access.server}", *notes])

    async def resize(self, bay: Bay, baymodel: BayModel, node_count: int) -> ProvisionResult:
        raise errors.PermanentError(
            "a registered cluster is resized by its own operator, not through Bayport")

    async def delete(self, bay: Bay, baymodel: BayModel) -> None:
        log.info("bay %s: forgetting the registered cluster (nothing to tear down)", bay.uuid)

    async def health(self, bay: Bay, baymodel: BayModel) -> str:
        try:
            access, _, policy = self._access(bay, baymodel)
            await self._check_destination(access, policy)
            async with self._client(access) as client:
                await self._get(client, access, "/version", policy)
        except errors.TemporaryError:
            return "UNHEALTHY"
        except errors.BayportError:
            return "UNKNOWN"
        return "HEALTHY"
