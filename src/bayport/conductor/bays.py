"""bay_create / bay_update / bay_delete: drive a bay row from IN_PROGRESS to a terminal state.

Every handler is idempotent (a redelivered message or a takeover runs it again
and changes nothing that is already done), claims the row in the database
before working, and finishes with a conditional UPDATE so that a bay deleted
meanwhile is never resurrected. Whatever goes wrong ends as *_FAILED with the
reason in ``status_reason``; the deadline (``create_timeout``) is enforced here
and again by the recovery sweep.

No database connection is held while a driver works: a create may retry for its whole
``create_timeout`` (up to a week), and a session kept open across it pinned one pooled
connection idle in a transaction per bay, so one tenant's stuck bays starved everyone. Each
handler reads in one short session, lets go, runs the driver, and writes in another. A
retrying create or resize is pre-empted by a delete: between attempts it looks at its row,
and a delete in this process wakes it at once, so the delete does not wait for the deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bayport import errors
from bayport.conductor.locks import ObjectLocks
from bayport.conductor.registry import ConductorRegistry
from bayport.db.base import utcnow
from bayport.db.models import BayCredential, BayModelRow, BayRow, ConductorRow
from bayport.drivers.base import ProvisionResult
from bayport.drivers.registry import DriverRegistry
from bayport.network.ipam.pod_pools import choose_pod_pool, host_routes
from bayport.objects.bay import Bay, BayModel
from bayport.objects.states import OPERATIONS, BayStatus

log = logging.getLogger(__name__)
T = TypeVar("T")
BayHook = Callable[[str], Awaitable[None]]


class Preempted(Exception):
    """The row left the operation's IN_PROGRESS state (deleted, or taken over) while retrying."""


@dataclass(frozen=True)
class Deadline:
    at: datetime
    minutes: int | None

    @classmethod
    def of(cls, row: BayRow) -> Deadline:
        return cls(at=row.deadline_at or (utcnow() + timedelta(minutes=row.create_timeout or 60)),
                   minutes=row.create_timeout)

    def expired(self) -> errors.PermanentError:
        return errors.PermanentError(f"timed out after {self.minutes} minutes (create_timeout)")
Forward = Callable[[str, str, dict[str, Any]], Awaitable[None]]


def bay_of(row: BayRow) -> Bay:
    return Bay.loaded(**{f: getattr(row, f) for f in Bay.model_fields})


def baymodel_of(row: BayModelRow) -> BayModel:
    return BayModel.loaded(**{f: getattr(row, f) for f in BayModel.model_fields})


class BayOperations:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], drivers: DriverRegistry,
                 registry: ConductorRegistry, forward: Forward) -> None:
        self.sessionmaker = sessionmaker
        self.drivers = drivers
        self.registry = registry
        self.forward = forward
        self.locks = ObjectLocks()
        # Set by a delete to wake this process's create/update of the same bay from its retry wait.
        self._preempt: dict[str, asyncio.Event] = {}
        # Other subsystems (workload watches, networks) hook in here, not by editing this file.
        self.on_ready: list[BayHook] = []
        self.on_deleting: list[BayHook] = []

    @property
    def me(self) -> str:
        return self.registry.id

    async def _claim(self, session: AsyncSession, uuid: str, running: BayStatus) -> BayRow | None:
        """Take the row for this conductor unless a live conductor already drives it (or this
        conductor's own lease ran out: then others may be driving it already)."""
        if not self.registry.lease_current():
            log.warning("bay %s: not taken: conductor %s has no current lease", uuid, self.me)
            return None
        cutoff = utcnow() - self.registry.dead_after
        live = select(ConductorRow.id).where(ConductorRow.heartbeat_at >= cutoff)
        result = await session.execute(
            update(BayRow).where(BayRow.uuid == uuid, BayRow.status == running.value,
                                 or_(BayRow.conductor_id.is_(None), BayRow.conductor_id == self.me,
                                     BayRow.conductor_id.not_in(live)))
            .values(conductor_id=self.me).execution_options(synchronize_session=False))
        await session.commit()
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return await session.get(BayRow, uuid, populate_existing=True)

    async def _load(self, session: AsyncSession, uuid: str) -> tuple[BayRow, BayModelRow] | None:
        row = await session.get(BayRow, uuid, populate_existing=True)
        if row is None:
            return None
        model = await session.get(BayModelRow, row.baymodel_id)
        if model is None:
            return None
        return row, model

    async def _within_deadline(self, uuid: str, running: BayStatus, deadline: Deadline,
                               op: Callable[[], Awaitable[T]]) -> T:
        """Run a driver step, retrying TemporaryError until the deadline or a pre-emption."""
        while True:
            remaining = (deadline.at - utcnow()).total_seconds()
            if remaining <= 0:
                raise deadline.expired()
            try:
                return await asyncio.wait_for(op(), timeout=remaining)
            except TimeoutError as exc:
                raise deadline.expired() from exc
            except errors.TemporaryError as exc:
                log.info("bay %s: temporary failure, retrying in %.1fs: %s", uuid, exc.delay,
                         exc.detail)
                await self._wait_unless_preempted(uuid, running, min(exc.delay, max(remaining, 0)))

    async def _wait_unless_preempted(self, uuid: str, running: BayStatus, delay: float) -> None:
        """Sleep ``delay`` (a delete here cuts it short), then raise Preempted if the row moved on."""
        event = self._preempt.setdefault(uuid, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=delay)
        event.clear()
        async with self.sessionmaker() as session:
            row = await session.get(BayRow, uuid)
            if row is None or row.status != running.value or row.conductor_id != self.me:
                raise Preempted(f"the bay is now {row.status if row else 'gone'}")

    def preempt(self, uuid: str) -> None:
        """Wake a create/update of ``uuid`` that waits to retry, so that it looks at its row."""
        event = self._preempt.get(uuid)
        if event is not None:
            event.set()

    async def _finish(self, session: AsyncSession, uuid: str, running: BayStatus,
                      values: dict[str, Any]) -> bool:
        result = await session.execute(
            update(BayRow).where(BayRow.uuid == uuid, BayRow.status == running.value,
                                 BayRow.conductor_id == self.me)
            .values(conductor_id=None, deadline_at=None, updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False))
        await session.commit()
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    async def _record(self, session: AsyncSession, uuid: str, result: ProvisionResult,
                      hosted: bool) -> dict[str, Any]:
        cred = await session.get(BayCredential, uuid)
        if cred is None:
            cred = BayCredential(bay_uuid=uuid, server=result.credentials.server)
            session.add(cred)
        cred.server = result.credentials.server
        cred.token = result.credentials.token
        cred.reader_token = result.credentials.reader_token
        cred.network_token = result.credentials.network_token
        cred.ca_data = result.credentials.ca_data
        cred.kubeconfig = result.credentials.kubeconfig
        await session.flush()
        return {"api_address": result.api_address, "master_addresses": result.master_addresses,
                "node_addresses": result.node_addresses, "stack_id": result.stack_id,
                "coe_version": result.coe_version, "health_status": "HEALTHY",
                "host": self.me if hosted else None}

    async def _give_pod_pool(self, session: AsyncSession, row: BayRow) -> None:
        """A pod pool of the bay's own (network.ipam.pod_pools), kept for its whole life; the
        unique index settles two conductors choosing at once (the loser chooses again)."""
        for _ in range(8):
            if row.pod_pool is not None:
                return
            taken = (await session.execute(select(BayRow.pod_pool).where(BayRow.pod_pool.is_not(None))))
            row.pod_pool = choose_pod_pool((p for p in taken.scalars() if p), host_routes())
            try:
                await session.commit()
                await session.refresh(row)        # committed attributes are expired; load them here
                log.info("bay %s: pod pool %s", row.uuid, row.pod_pool)
                return
            except IntegrityError:
                await session.rollback()
                await session.refresh(row)
        raise errors.TemporaryError("pod pools are being taken concurrently", delay=0.2)

    async def _take_hosted(self, session: AsyncSession, uuid: str, running: BayStatus,
                           method: str) -> tuple[BayRow, BayModelRow] | None:
        """Claim and load the bay for an operation on its cluster, or hand the operation to the
        live conductor whose process hosts that cluster (None: nothing to do here)."""
        current = await session.get(BayRow, uuid)
        if current is not None and await self._hosted_elsewhere(session, current):
            await self.forward(current.host or "", method, {"bay_uuid": uuid})
            return None
        row = await self._claim(session, uuid, running)
        return await self._load(session, uuid) if row is not None else None

    async def _hosted_elsewhere(self, session: AsyncSession, row: BayRow) -> bool:
        """A local bay lives in its host's process; a live host must do the work."""
        if not row.host or row.host == self.me:
            return False
        return row.host in await self.registry.live_ids(session)

    async def create(self, uuid: str, note: str | None = None) -> None:
        running, done, failed = BayStatus.CREATE_IN_PROGRESS, BayStatus.CREATE_COMPLETE, \
            BayStatus.CREATE_FAILED
        async with self.locks.hold(uuid):
            async with self.sessionmaker() as session:
                row = await self._claim(session, uuid, running)
                loaded = await self._load(session, uuid) if row is not None else None
                if loaded is None:
                    log.info("bay %s: create skipped (gone, not in progress or driven elsewhere)", uuid)
                    return
                row, model = loaded
                bay, baymodel = bay_of(row), baymodel_of(model)  # before a commit expires the rows
                deadline = Deadline.of(row)
                try:
                    if model.driver == "local":
                        await self._give_pod_pool(session, row)
                        bay = bay.model_copy(update={"pod_pool": row.pod_pool})
                except Exception as exc:
                    await session.rollback()
                    await self._fail(session, uuid, running, failed, exc)
                    return
            outcome = await self._drive(uuid, running, failed, deadline,
                                        lambda: self.drivers.get(baymodel.driver).create(bay, baymodel),
                                        hosted=baymodel.driver == "local",
                                        reasons=lambda r: ["created", *r.notes, *([note] if note else [])],
                                        done=done)
            if outcome is None:
                return
            if not outcome:
                # Deleted (or taken over) while we provisioned: give back what we built.
                log.info("bay %s: provisioning ended but the row moved on; releasing", uuid)
                await self.drivers.get(baymodel.driver).delete(bay, baymodel)
                return
            log.info("bay %s: %s", uuid, done.value)
            self._preempt.pop(uuid, None)
            await self._run_hooks(self.on_ready, uuid)

    async def _drive(self, uuid: str, running: BayStatus, failed: BayStatus, deadline: Deadline,
                     step: Callable[[], Awaitable[ProvisionResult]], *, hosted: bool,
                     reasons: Callable[[ProvisionResult], list[str]], done: BayStatus) -> bool | None:
        """Run the driver step with no session open, then record it: True when the row is
        finished, False when it moved on meanwhile (pre-empted), None when it failed."""
        try:
            result = await self._within_deadline(uuid, running, deadline, step)
        except Preempted as exc:
            log.info("bay %s: %s; stopping the %s", uuid, exc, running.value)
            return False
        except Exception as exc:  # every failure ends in a terminal state with a reason
            async with self.sessionmaker() as session:
                await self._fail(session, uuid, running, failed, exc)
            return None
        async with self.sessionmaker() as session:
            try:
                values = await self._record(session, uuid, result, hosted=hosted)
                return await self._finish(session, uuid, running,
                                          {"status": done.value,
                                           "status_reason": "; ".join(reasons(result)), **values})
            except Exception as exc:
                await session.rollback()
                await self._fail(session, uuid, running, failed, exc)
                return None

    async def update(self, uuid: str, note: str | None = None) -> None:
        """Resize to the row's ``node_count`` (the API wrote the desired size there)."""
        running, done, failed = BayStatus.UPDATE_IN_PROGRESS, BayStatus.UPDATE_COMPLETE, \
            BayStatus.UPDATE_FAILED
        async with self.locks.hold(uuid):
            async with self.sessionmaker() as session:
                loaded = await self._take_hosted(session, uuid, running, "bay_update")
                if loaded is None:
                    return
                row, model = loaded
                bay, baymodel = bay_of(row), baymodel_of(model)
                node_count, deadline = row.node_count, Deadline.of(row)
            await self._drive(
                uuid, running, failed, deadline,
                lambda: self.drivers.get(model.driver).resize(bay, baymodel, node_count),
                hosted=baymodel.driver == "local", done=done,
                reasons=lambda r: [f"resized to {node_count} nodes", *r.notes,
                                   *([note] if note else [])])
            self._preempt.pop(uuid, None)

    async def delete(self, uuid: str) -> None:
        running, failed = BayStatus.DELETE_IN_PROGRESS, BayStatus.DELETE_FAILED
        self.preempt(uuid)  # a create/update retrying here lets go of the bay's lock
        async with self.locks.hold(uuid):
            async with self.sessionmaker() as session:
                loaded = await self._take_hosted(session, uuid, running, "bay_delete")
                if loaded is None:
                    return
                row, model = loaded
                bay, baymodel = bay_of(row), baymodel_of(model)
                deadline = Deadline.of(row)
            try:
                driver = self.drivers.get(model.driver)
                await self._run_hooks(self.on_deleting, uuid, strict=True)
                await self._within_deadline(uuid, running, deadline,
                                            lambda: driver.delete(bay, baymodel))
                async with self.sessionmaker() as session:
                    await session.execute(delete(BayRow).where(BayRow.uuid == uuid,
                                                               BayRow.conductor_id == self.me))
                    await session.commit()
                log.info("bay %s: deleted", uuid)
            except Exception as exc:
                async with self.sessionmaker() as session:
                    await self._fail(session, uuid, running, failed, exc)
            finally:
                self._preempt.pop(uuid, None)

    async def _fail(self, session: AsyncSession, uuid: str, running: BayStatus, failed: BayStatus,
                    exc: BaseException) -> None:
        if isinstance(exc, errors.BayportError):
            reason = exc.detail
        else:
            log.exception("bay %s: unexpected error", uuid, exc_info=exc)
            reason = f"unexpected error: {type(exc).__name__}: {exc}"
        await self._finish(session, uuid, running, {"status": failed.value, "status_reason": reason})
        log.warning("bay %s: %s: %s", uuid, failed.value, reason)

    async def _run_hooks(self, hooks: list[BayHook], uuid: str, *, strict: bool = False) -> None:
        for hook in hooks:
            try:
                await hook(uuid)
            except Exception:
                if strict:
                    raise
                log.exception("bay %s: hook %s failed", uuid, getattr(hook, "__name__", hook))

    async def resume(self, uuid: str, status: str, note: str | None = None) -> None:
        """Drive a row another conductor left IN_PROGRESS (recovery.py decides when)."""
        op = next((name for name, spec in OPERATIONS.items() if spec[1].value == status), None)
        if op == "create":
            await self.create(uuid, note)
        elif op == "update":
            await self.update(uuid, note)
        elif op == "delete":
            await self.delete(uuid)
