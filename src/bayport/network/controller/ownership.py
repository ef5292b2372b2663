"""Which bays a pod-network controller handles, so that each bay has exactly one.

Inside conductors (``bayport serve``, ``bayport conductor``) the rule is the workload
watch's: the hosting conductor handles an embedded bay, and rendezvous hashing over live
conductors picks one for every other bay. A standalone ``bayport netd`` handles every bay
(run one). The candidates are the bays whose cluster is up and whose baymodel's network
driver is ``bayport`` (a local baymodel without one defaults to it, as the API does).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bayport.db.models import BayModelRow, BayRow
from bayport.network import ipam
from bayport.objects.ownership import rendezvous_owner
from bayport.objects.states import BayStatus

NETWORK_DRIVER = "bayport"
# Bays whose cluster is up, as the workload watch has them.
NETWORKED_STATES = (BayStatus.CREATE_COMPLETE, BayStatus.UPDATE_COMPLETE, BayStatus.UPDATE_IN_PROGRESS,
                    BayStatus.UPDATE_FAILED)


@dataclass(frozen=True)
class Candidate:
    uuid: str
    host: str | None
    project_id: str
    pod_pool: str = ipam.DEFAULT_POD_POOL


async def candidates(session: AsyncSession, bay_uuid: str | None = None) -> list[Candidate]:
    """Bays with a running cluster on the bayport pod network (or just ``bay_uuid``)."""
    stmt = (select(BayRow.uuid, BayRow.host, BayRow.project_id, BayRow.pod_pool)
            .join(BayModelRow, BayModelRow.uuid == BayRow.baymodel_id)
            .where(BayRow.status.in_([s.value for s in NETWORKED_STATES]),
                   or_(BayModelRow.network_driver == NETWORK_DRIVER,
                       and_(BayModelRow.network_driver.is_(None), BayModelRow.driver == "local"))))
    if bay_uuid is not None:
        stmt = stmt.where(BayRow.uuid == bay_uuid)
    rows = (await session.execute(stmt)).all()
    return [Candidate(uuid=u, host=h, project_id=p, pod_pool=pool or ipam.DEFAULT_POD_POOL)
            for u, h, p, pool in rows]




class Ownership(Protocol):
    async def owned(self, session: AsyncSession, bays: Sequence[Candidate]) -> set[str]: ...


class EveryBay:
    """``bayport netd``: this one controller handles every candidate bay."""

    async def owned(self, session: AsyncSession, bays: Sequence[Candidate]) -> set[str]:
        return {bay.uuid for bay in bays}


class ConductorShare:
    """Inside a conductor: hosted bays here, the rest by rendezvous over live conductors."""

    def __init__(self, member: str, live_ids: Callable[[AsyncSession], Awaitable[set[str]]]) -> None:
        self.member = member
        self.live_ids = live_ids

    async def owned(self, session: AsyncSession, bays: Sequence[Candidate]) -> set[str]:
        live: set[str] | None = None
        owned: set[str] = set()
        for bay in bays:
            if bay.host == self.member:
                owned.add(bay.uuid)
            elif bay.host is None:
                if live is None:
                    live = await self.live_ids(session) | {self.member}
                if rendezvous_owner(bay.uuid, live) == self.member:
                    owned.add(bay.uuid)
        return owned
