"""The conductor's RPC surface: one method per remote operation, thin on purpose.

Each method checks what it was sent and hands over to the operation objects
(bays.py, and the workload/network/job handlers registered by the service).
"""

from __future__ import annotations

import logging

from bayport import errors
from bayport.conductor.bays import BayOperations
from bayport.objects.bay import Bay
from bayport.objects.context import RequestContext
from bayport.rpc import is_redelivered

log = logging.getLogger(__name__)


def _bay_uuid(bay: Bay | None, bay_uuid: str | None) -> str:
    if bay is not None:
        return bay.uuid
    if bay_uuid:
        return bay_uuid
    raise errors.InvalidInput("bay or bay_uuid is required", field="bay")


class BayEndpoint:
    """Bay lifecycle, as in Magnum's ``bay_conductor.Handler``."""

    RPC_API_VERSION = "1.0"

    def __init__(self, bays: BayOperations) -> None:
        self._bays = bays

    async def bay_create(self, ctx: RequestContext, bay: Bay | None = None,
                         bay_uuid: str | None = None, bay_create_timeout: int | None = None) -> None:
        uuid = _bay_uuid(bay, bay_uuid)
        log.info("%s bay_create %s by %s/%s%s", ctx.request_id, uuid, ctx.project_id, ctx.user_id,
                 " (redelivered)" if is_redelivered() else "")
        await self._bays.create(uuid)

    async def bay_update(self, ctx: RequestContext, bay: Bay | None = None,
                         bay_uuid: str | None = None, node_count: int | None = None) -> None:
        uuid = _bay_uuid(bay, bay_uuid)
        log.info("%s bay_update %s node_count=%s", ctx.request_id, uuid, node_count)
        await self._bays.update(uuid)

    async def bay_delete(self, ctx: RequestContext, bay: Bay | None = None,
                         bay_uuid: str | None = None) -> None:
        uuid = _bay_uuid(bay, bay_uuid)
        log.info("%s bay_delete %s", ctx.request_id, uuid)
        await self._bays.delete(uuid)
