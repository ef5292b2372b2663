"""Per-bay lightkube clients and the one place where cluster errors become Bayport errors.

The conductor (workloads, tenant jobs, the pod-network controller) reaches every bay the
same way: ``ClusterClients.get(bay_uuid)`` builds an async lightkube client from the bay's
``bay_credentials`` row (server + bearer token + CA data, or a full kubeconfig text) and
keeps it until the credentials change (a re-hosted embedded bay gets a new URL and token).
A ``ClusterClients`` of the pod-network controller (``role="network"``) presents the bay's
network token where the bay has one: the only credential an embedded bay lets set the kuryr.org
annotations.
``cluster_errors()`` wraps every call: a refusal of the cluster becomes
``errors.ClusterAPIError`` carrying the cluster's status, reason and field causes (422
Invalid → 400), an unreachable cluster becomes ``errors.TemporaryError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx2
import yaml
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError, ConfigError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bayport import errors
from bayport.db.models import BayCredential

log = logging.getLogger(__name__)

# Requests to a bay's API are short. lightkube lifts the read timeout of a watch; the informer
# (kube.informer) bounds it with its own inactivity timeout.
DEFAULT_TIMEOUT = 10.0
FIELD_MANAGER = "bayport"


@dataclass(frozen=True)
class ClusterAccess:
    """How to reach one bay's Kubernetes API; equal values mean the same client may be reused."""

    server: str
    token: str | None = None
    ca_data: str | None = None
    kubeconfig: str | None = None

    @classmethod
    def of(cls, cred: BayCredential, role: str = "admin") -> ClusterAccess:
        """The access of ``role``: "admin", or "network" (the network token; the admin one for
        bays whose driver has none)."""
        if role == "network" and cred.network_token:
            return cls(server=cred.server, token=cred.network_token, ca_data=cred.ca_data)
        return cls(server=cred.server, token=cred.token, ca_data=cred.ca_data,
                   kubeconfig=cred.kubeconfig)

    def kubeconfig_dict(self) -> dict[str, Any]:
        """The kubeconfig this access stands for (the stored text when there is one)."""
        if self.kubeconfig:
            loaded = yaml.safe_load(self.kubeconfig)
            if not isinstance(loaded, dict):
                raise errors.PermanentError("the bay's stored kubeconfig is not a YAML mapping")
            return loaded
        cluster: dict[str, Any] = {"server": self.server}
        if self.ca_data:
            cluster["certificate-authority-data"] = self.ca_data
        user: dict[str, Any] = {"token": self.token} if self.token else {}
        return {
            "apiVersion": "v1", "kind": "Config", "current-context": "bay",
            "clusters": [{"name": "bay", "cluster": cluster}],
            "users": [{"name": "bayport", "user": user}],
            "contexts": [{"name": "bay", "context": {"cluster": "bay", "user": "bayport",
                                                     "namespace": "default"}}],
        }


def make_client(access: ClusterAccess, *, timeout: float = DEFAULT_TIMEOUT) -> AsyncClient:
    """A fresh lightkube AsyncClient for ``access``; the caller closes it.

    ``trust_env=False``: the control plane talks to exactly the server it was given, never
    through a proxy picked up from the environment.
    """
    try:
        config = KubeConfig.from_dict(access.kubeconfig_dict())
        return AsyncClient(config=config, timeout=httpx2.Timeout(timeout), trust_env=False,
                           field_manager=FIELD_MANAGER)
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        raise errors.PermanentError(f"the bay's cluster credentials are unusable: {exc}") from exc


class ClusterClients:
    """A cache of one AsyncClient per bay, refreshed when the bay's credentials change."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], *,
                 timeout: float = DEFAULT_TIMEOUT, role: str = "admin") -> None:
        self.sessionmaker = sessionmaker
        self.timeout = timeout
        self.role = role
        self._clients: dict[str, tuple[ClusterAccess, AsyncClient]] = {}
        self._lock = asyncio.Lock()

    async def access(self, bay_uuid: str) -> ClusterAccess:
        """The bay's current credentials; 409 when it has none (not provisioned yet)."""
        async with self.sessionmaker() as session:
            cred = await session.get(BayCredential, bay_uuid, populate_existing=True)
        if cred is None:
            raise errors.InvalidState(f"bay {bay_uuid} has no Kubernetes API yet", field="bay_uuid")
        return ClusterAccess.of(cred, self.role)

    def cached(self, bay_uuid: str) -> AsyncClient | None:
        hit = self._clients.get(bay_uuid)
        return hit[1] if hit else None

    async def get(self, bay_uuid: str, *, refresh: bool = False) -> AsyncClient:
        """The client for ``bay_uuid``: cached, or built from the credentials row.

        ``refresh=True`` re-reads the credentials and replaces the client if they changed
        (use it after a connection failure: the bay may have been re-hosted).
        """
        hit = self._clients.get(bay_uuid)
        if hit is not None and not refresh:
            return hit[1]
        access = await self.access(bay_uuid)
        async with self._lock:
            hit = self._clients.get(bay_uuid)
            if hit is not None and hit[0] == access:
                return hit[1]
            client = make_client(access, timeout=self.timeout)
            self._clients[bay_uuid] = (access, client)
        if hit is not None:
            await _close_quietly(hit[1])
        return client

    def put(self, bay_uuid: str, access: ClusterAccess) -> AsyncClient:
        """Use ``access`` for ``bay_uuid`` without a database read (the caller just stored it)."""
        hit = self._clients.get(bay_uuid)
        if hit is not None and hit[0] == access:
            return hit[1]
        client = make_client(access, timeout=self.timeout)
        self._clients[bay_uuid] = (access, client)
        if hit is not None:
            _close_later(hit[1])
        return client

    async def forget(self, bay_uuid: str) -> None:
        """Close and drop the bay's client (the bay is being deleted)."""
        hit = self._clients.pop(bay_uuid, None)
        if hit is not None:
            await _close_quietly(hit[1])

    async def close(self) -> None:
        clients = [c for _, c in self._clients.values()]
        self._clients.clear()
        for client in clients:
            await _close_quietly(client)


async def _close_quietly(client: AsyncClient) -> None:
    try:
        await client.close()
    except Exception:  # closing a client whose server is gone must not fail the caller
        log.debug("closing a cluster client failed", exc_info=True)


_closing: set[asyncio.Task[None]] = set()


def _close_later(client: AsyncClient) -> None:
    task = asyncio.get_running_loop().create_task(_close_quietly(client))
    _closing.add(task)
    task.add_done_callback(_closing.discard)


def _causes(exc: ApiError) -> list[dict[str, str]]:
    details = exc.status.details
    if details is None or not details.causes:
        return []
    return [{"field": c.field or "", "message": c.message or "", "reason": c.reason or ""}
            for c in details.causes]


def cluster_error(exc: BaseException, *, what: str = "request") -> errors.BayportError:
    """The Bayport error for a failed call to a bay's Kubernetes API.

    4xx keep their status (422 Invalid becomes 400, as a bad manifest is the client's fault)
    and carry ``reason`` and the field ``causes``; 401/403 from a cluster mean Bayport's own
    credentials are wrong or the namespace is terminating, and 5xx are the cluster's fault:
    both become 502. Transport failures are temporary (503): the cluster may be restarting.
    """
    if isinstance(exc, errors.BayportError):
        return exc
    if isinstance(exc, ApiError):
        code = exc.status.code or exc.response.status_code
        reason = exc.status.reason or ""
        message = exc.status.message or str(exc)
        causes = _causes(exc)
        if code == 422 or reason == "Invalid":
            fields = [c for c in causes if c["field"]]
            detail = message
            if fields and not all(c["field"] in message for c in fields):
                detail += ": " + "; ".join(f"{c['field']}: {c['message']}" for c in fields)
            return errors.ClusterAPIError(detail, status=400, reason=reason or "Invalid",
                                          causes=causes, field=fields[0]["field"] if fields else None)
        if code == 401:
            return errors.ClusterAPIError(f"the bay's Kubernetes API refused Bayport's credentials "
                                          f"({message})", status=502, reason=reason)
        if code == 403 and "being terminated" not in message:
            return errors.ClusterAPIError(message, status=502, reason=reason)
        status = code if 400 <= code < 500 else 502
        return errors.ClusterAPIError(message, status=status, reason=reason, causes=causes)
    if isinstance(exc, httpx2.TimeoutException):
        return errors.TemporaryError(f"the bay's Kubernetes API did not answer the {what} in time",
                                     delay=1.0)
    if isinstance(exc, httpx2.HTTPStatusError):
        return errors.ClusterAPIError(
            f"the bay's Kubernetes API answered the {what} with HTTP {exc.response.status_code}",
            status=502)
    if isinstance(exc, httpx2.TransportError):
        return errors.TemporaryError(f"the bay's Kubernetes API cannot be reached: {exc}", delay=1.0)
    return errors.ClusterAPIError(f"{what} failed: {type(exc).__name__}: {exc}", status=502)


@contextlib.asynccontextmanager
async def cluster_errors(what: str = "request") -> AsyncIterator[None]:
    """Translate lightkube/httpx failures raised inside the block (``raise … from``)."""
    try:
        yield
    except (ApiError, httpx2.HTTPError) as exc:
        raise cluster_error(exc, what=what) from exc


def is_not_found(exc: BaseException) -> bool:
    if isinstance(exc, errors.ClusterAPIError):
        return exc.http_status == 404
    return isinstance(exc, ApiError) and exc.status.code == 404


def is_gone(exc: BaseException) -> bool:
    """A watch's resourceVersion is too old (410): relist."""
    return isinstance(exc, ApiError) and exc.status.code == 410
