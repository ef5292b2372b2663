"""BayModel (ClusterTemplate) and Bay (Cluster): the templates and the clusters made from them.

The API builds these from validated requests and ships them to the conductor;
the conductor persists what changed and drives the status machine in
``bayport.conductor.states``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from bayport.objects.base import BayportObject


class BayModel(BayportObject):
    OBJ_NAME = "BayModel"
    VERSION = "1.0"

    uuid: str
    name: str | None = None
    project_id: str = ""
    user_id: str = ""
    coe: str = "kubernetes"
    driver: str = "local"
    image_id: str | None = None
    flavor_id: str | None = None
    master_flavor_id: str | None = None
    keypair_id: str | None = None
    external_network_id: str | None = None
    fixed_network: str | None = None
    fixed_subnet: str | None = None
    dns_nameserver: str | None = None
    docker_volume_size: int | None = None
    network_driver: str | None = None
    volume_driver: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    public: bool = False
    hidden: bool = False
    tls_disabled: bool = False
    master_lb_enabled: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Bay(BayportObject):
    OBJ_NAME = "Bay"
    VERSION = "1.0"

    uuid: str
    name: str | None = None
    project_id: str = ""
    user_id: str = ""
    baymodel_id: str = ""
    node_count: int = 1
    master_count: int = 1
    discovery_url: str | None = None
    create_timeout: int = 60
    stack_id: str | None = None
    status: str | None = None
    status_reason: str | None = None
    api_address: str | None = None
    node_addresses: list[str] = Field(default_factory=list)
    master_addresses: list[str] = Field(default_factory=list)
    coe_version: str | None = None
    health_status: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    conductor_id: str | None = None
    host: str | None = None
    pod_pool: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def to_api(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"conductor_id", "host", "pod_pool"})
