"""The driver interface the conductor provisions through.

A driver turns a Bay + BayModel into a reachable Kubernetes API and back. It
returns what the conductor records (addresses, stack id, credentials); it never
touches the database or the bus. Errors: ``TemporaryError`` is retried by the
conductor until the bay's deadline, anything else fails the operation with its
message as ``status_reason``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import ClassVar

from bayport.config import Settings
from bayport.objects.bay import Bay, BayModel


@dataclass
class Credentials:
    """``token`` (or ``kubeconfig``) is full admin; ``reader_token`` only reads;
    ``network_token`` is the pod-network controller's (see db.models.BayCredential)."""

    server: str
    token: str | None = None
    ca_data: str | None = None
    kubeconfig: str | None = None
    reader_token: str | None = None
    network_token: str | None = None


@dataclass
class ProvisionResult:
    api_address: str
    master_addresses: list[str]
    node_addresses: list[str]
    credentials: Credentials
    stack_id: str | None = None
    coe_version: str | None = None
    notes: list[str] = field(default_factory=list)


class Driver(abc.ABC):
    """One way of getting a Kubernetes cluster. Every method must be idempotent."""

    name: str = ""
    # The most nodes (masters and workers) one bay of this driver can have, where the driver
    # has such a bound; the API refuses more up front instead of failing the bay later.
    max_nodes: ClassVar[int | None] = None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @abc.abstractmethod
    async def create(self, bay: Bay, baymodel: BayModel) -> ProvisionResult:
        """Provision (or finish provisioning) the bay; called again after a takeover."""

    @abc.abstractmethod
    async def resize(self, bay: Bay, baymodel: BayModel, node_count: int) -> ProvisionResult:
        """Bring the worker count to ``node_count``."""

    @abc.abstractmethod
    async def delete(self, bay: Bay, baymodel: BayModel) -> None:
        """Remove everything the bay had; deleting what is already gone succeeds."""

    async def health(self, bay: Bay, baymodel: BayModel) -> str:
        """HEALTHY / UNHEALTHY / UNKNOWN, as Magnum's health_status."""
        return "UNKNOWN"

    async def close(self) -> None:
        """Release what the driver holds in this process (embedded clusters, clients)."""
