"""The address allocator: O(1) amortised per address at any fill, safe with several
processes on one database.

Each subnet has a cursor (``subnets.next_index``) over its allocation pools that only
moves forward, and a free list (``ip_free``) of released addresses. An allocator
claims a block of the cursor range with one ``UPDATE … RETURNING`` and hands the
block out from memory; fresh addresses come first and released ones are reused
oldest-first once the cursor is spent, so an address freed by a deleted pod rests as
long as possible before a new pod gets it (as host-local IPAM does). No step scans
the used addresses.

A block kept in memory beyond the claiming call is recorded as a lease (``ip_leases``).
The allocator stops using a block halfway through its lease; after expiry any sweep returns the positions that
never became allocations to the free list, so a crashed process leaks nothing for
long, and ``release_leases`` gives the rest back on a clean shutdown. Whatever races
remain (a sweep against a slow holder, clocks apart) end at the primary key of
``ip_allocations``: the loser skips to its next candidate.

A block is claimed inside the caller's transaction (the subnet may have been created
in it) and is shared with the process's other sessions only once that transaction
commits; a rollback takes the claim back with it. Callers: ``ports`` and ``networks``.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from bayport import errors
from bayport.db.base import new_uuid, utcnow
from bayport.network.ipam.addresses import PoolLayout
from bayport.network.ipam.exceptions import SubnetExhausted
from bayport.network.ipam.statements import ALLOCATIONS, LEASES, SUBNETS, execute, first_row, statements

# 64 addresses per claim keeps the subnet row out of the hot path (one UPDATE per 64
# allocations) while a crash strands at most 64 addresses of a subnet for one lease.
MAX_BLOCK = 64
# Claim at most 1/32 of what is left, so near exhaustion almost nothing sits in another
# process's memory while this one has to report the subnet full.
TAIL_FRACTION = 32
LEASE_SECONDS = 60.0
# Expired leases swept along with a claim (at most every quarter lease per subnet), so
# sweeping needs no separate schedule.
SWEEP_PER_CLAIM = 4


@dataclass(slots=True)
class _Block:
    next: int
    end: int
    use_by: float

    def take(self, now: float) -> int | None:
        if self.next >= self.end or now >= self.use_by:
            return None
        index = self.next
        self.next += 1
        return index

    @property
    def left(self) -> int:
        return self.end - self.next


class AddressAllocator:
    """One per engine (that is, per process and database): its blocks live in memory."""

    def __init__(self, *, max_block: int = MAX_BLOCK, lease_seconds: float = LEASE_SECONDS,
                 holder: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if max_block < 1 or lease_seconds <= 0:
            raise ValueError("max_block must be >= 1 and lease_seconds > 0")
        self.max_block = max_block
        self.lease_seconds = lease_seconds
        self.holder = holder or f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"
        self._clock = clock
        self._blocks: dict[str, list[_Block]] = {}
        self._layouts: dict[str, PoolLayout] = {}
        self._cursor_spent: set[str] = set()
        self._left_hint: dict[str, int] = {}
        self._free_after: dict[str, int] = {}
        self._swept_at: dict[str, float] = {}
        self._pending_key = f"bayport.ipam.pending:{self.holder}"

    # ---- the public operations -------------------------------------------------------

    async def allocate(self, session: AsyncSession, subnet_id: str, *,
                       port_id: str | None = None) -> str:
        """Allocate one address of ``subnet_id`` in the session's transaction."""
        return (await self.allocate_many(session, subnet_id, 1, port_ids=[port_id]))[0]

    async def allocate_many(self, session: AsyncSession, subnet_id: str, count: int, *,
                            port_ids: Sequence[str | None] | None = None) -> list[str]:
        """Allocate ``count`` addresses with one multi-row INSERT per round (for bursts).

        All or nothing only together with the caller's transaction: on
        ``SubnetExhausted`` the caller rolls back what this call already allocated.
        """
        if count < 1:
            return []
        owners = list(port_ids) if port_ids is not None else [None] * count
        if len(owners) != count:
            raise ValueError("port_ids must name one owner per address")
        layout = await self.layout(session, subnet_id)
        sql = statements(session)
        allocated: dict[int, str] = {}
        waiting = list(range(count))
        while waiting:
            candidates = await self._candidates(session, subnet_id, layout, len(waiting))
            now = utcnow()
            pairs = list(zip(waiting, candidates, strict=False))
            rows = [{"subnet_id": subnet_id, "ip_address": address, "port_id": owners[slot],
                     "created_at": now} for slot, address in pairs]
            # One row goes as a plain execute: executemany's bookkeeping costs more than it.
            result = await execute(session, sql.insert_allocation, rows[0] if len(rows) == 1 else rows)
            inserted = set(result.scalars())
            for slot, address in pairs:
                if address in inserted:
                    allocated[slot] = address
            waiting = [slot for slot in waiting if slot not in allocated]
        return [allocated[slot] for slot in range(count)]

    async def release(self, session: AsyncSession, subnet_id: str, ip_address: str, *,
                      port_id: str | None = None) -> bool:
        """Free an address (only if ``port_id`` still holds it, when given). Idempotent."""
        sql = statements(session)
        params = {"subnet": subnet_id, "ip": ip_address}
        if port_id is None:
            row = await first_row(session, sql.delete_allocation, params)
        else:
            row = await first_row(session, sql.delete_port_allocation, {**params, "port": port_id})
        if row is None:
            return False
        await execute(session, sql.insert_free, {"subnet_id": subnet_id, "ip_address": ip_address})
        return True

    async def reclaim_expired(self, session: AsyncSession, *, subnet_id: str | None = None,
                              limit: int | None = 100, now: datetime | None = None) -> int:
        """Sweep expired leases: their never-allocated positions join the free list."""
        pick = select(LEASES.c.id).where(LEASES.c.expires_at < (now or utcnow()))
        if subnet_id is not None:
            pick = pick.where(LEASES.c.subnet_id == subnet_id)
        pick = pick.order_by(LEASES.c.expires_at).limit(limit).with_for_update(skip_locked=True)
        result = await execute(session, delete(LEASES).where(LEASES.c.id.in_(pick)).returning(
            LEASES.c.subnet_id, LEASES.c.start_index, LEASES.c.end_index))
        return await self._return_positions(session, [tuple(r) for r in result.all()])

    async def release_leases(self, session: AsyncSession) -> int:
        """Give back every block this allocator holds (clean shutdown; no transaction of
        this process may still be using an address from them)."""
        result = await execute(session, delete(LEASES).where(LEASES.c.holder == self.holder)
                               .returning(LEASES.c.subnet_id, LEASES.c.start_index,
                                          LEASES.c.end_index))
        self._blocks.clear()
        return await self._return_positions(session, [tuple(r) for r in result.all()])

    def forget_subnets(self, subnet_ids: Sequence[str]) -> None:
        """Drop what this process remembers of deleted subnets."""
        for subnet_id in subnet_ids:
            self._blocks.pop(subnet_id, None)
            self._layouts.pop(subnet_id, None)
            self._cursor_spent.discard(subnet_id)
            self._left_hint.pop(subnet_id, None)
            self._free_after.pop(subnet_id, None)
            self._swept_at.pop(subnet_id, None)

    def held(self, subnet_id: str) -> int:
        """Addresses of ``subnet_id`` this process holds in committed blocks, unused."""
        now = self._clock()
        return sum(b.left for b in self._blocks.get(subnet_id, ()) if b.use_by > now)

    async def layout(self, session: AsyncSession, subnet_id: str) -> PoolLayout:
        """The subnet's pools as positions (cached: pools never change after creation)."""
        layout = self._layouts.get(subnet_id)
        if layout is None:
            row = await first_row(session, select(SUBNETS.c.cidr, SUBNETS.c.allocation_pools)
                                  .where(SUBNETS.c.id == subnet_id))
            if row is None:
                raise errors.NotFound(f"subnet {subnet_id} not found", subnet_id=subnet_id)
            layout = PoolLayout.of(row.cidr, row.allocation_pools)
            self._layouts[subnet_id] = layout
        return layout

    # ---- where a candidate address comes from ---------------------------------------

    async def _candidates(self, session: AsyncSession, subnet_id: str, layout: PoolLayout,
                          want: int) -> list[str]:
        """1 to ``want`` distinct addresses that are not allocated as far as this process
        knows: fresh positions from blocks first, then the free list, oldest first."""
        found: list[str] = []
        while len(found) < want:
            index = self._take_local(session, subnet_id)
            if index is not None:
                found.append(layout.address_at(index))
                continue
            if subnet_id in self._cursor_spent:
                break
            block = await self._claim(session, subnet_id, layout, want - len(found))
            if block is None:
                # The cursor never moves back, so this subnet never needs a claim again.
                self._cursor_spent.add(subnet_id)
                break
            now = self._clock()
            while len(found) < want and (index := block.take(now)) is not None:
                found.append(layout.address_at(index))
        if len(found) < want:
            found += await self._pop_free(session, subnet_id, want - len(found))
        if not found and await self.reclaim_expired(session, subnet_id=subnet_id, limit=None):
            found += await self._pop_free(session, subnet_id, want)
        if not found:
            raise SubnetExhausted(
                f"subnet {subnet_id} has no free address: all {layout.size} addresses of its "
                "allocation pools are allocated or leased", subnet_id=subnet_id,
                pool_size=layout.size)
        # A stale free-list entry may repeat a block's address; one INSERT must not see both.
        return list(dict.fromkeys(found))

    def _take_local(self, session: AsyncSession, subnet_id: str) -> int | None:
        now = self._clock()
        pending: dict[str, list[_Block]] | None = session.info.get(self._pending_key)
        if pending:
            for block in pending.get(subnet_id, ()):
                index = block.take(now)
                if index is not None:
                    return index
        blocks = self._blocks.get(subnet_id)
        while blocks:
            index = blocks[-1].take(now)
            if index is not None:
                return index
            blocks.pop()
        if blocks is not None:
            del self._blocks[subnet_id]
        return None

    async def _claim(self, session: AsyncSession, subnet_id: str, layout: PoolLayout,
                     want: int) -> _Block | None:
        left = self._left_hint.get(subnet_id, layout.size)
        # A batch that will use ``want`` addresses right away may claim them all at once.
        size = max(1, min(self.max_block, left // TAIL_FRACTION), min(want, left))
        sql = statements(session)
        row = await first_row(session, sql.claim_block, {"subnet": subnet_id, "size": size})
        if row is None:
            return None
        new_cursor, pool_size = int(row[0]), int(row[1])
        start, end = new_cursor - size, min(new_cursor, pool_size, layout.size)
        self._left_hint[subnet_id] = max(0, pool_size - new_cursor)
        block = _Block(next=start, end=end, use_by=self._clock() + self.lease_seconds / 2)
        if size > want:
            # Positions will outlive this call in memory: lease them. A claim used up by
            # this call needs no lease: its transaction allocates them all or rolls back.
            await execute(session, sql.insert_lease, {
                "id": new_uuid(), "subnet_id": subnet_id, "holder": self.holder,
                "start_index": start, "end_index": end,
                "expires_at": utcnow() + timedelta(seconds=self.lease_seconds)})
            self._pending(session).setdefault(subnet_id, []).append(block)
            await self._sweep_now_and_then(session, subnet_id)
        return block

    async def _sweep_now_and_then(self, session: AsyncSession, subnet_id: str) -> None:
        """Sweep the subnet's expired leases along with a claim, a few times per lease."""
        now = self._clock()
        if now - self._swept_at.get(subnet_id, -self.lease_seconds) >= self.lease_seconds / 4:
            self._swept_at[subnet_id] = now
            await self.reclaim_expired(session, subnet_id=subnet_id, limit=SWEEP_PER_CLAIM)

    async def _pop_free(self, session: AsyncSession, subnet_id: str, count: int) -> list[str]:
        """Oldest free addresses first. The scan starts after the last entry this process
        popped: on PostgreSQL popped rows stay in the index as dead entries until vacuum,
        and scanning from the start would step over all of them every time."""
        sql = statements(session)
        after = self._free_after.get(subnet_id, 0)
        rows = (await execute(session, sql.pop_free,
                              {"subnet": subnet_id, "n": count, "after": after})).all()
        if len(rows) < count and after:
            # Entries below the mark: skipped while locked, or committed out of order.
            rows += (await execute(session, sql.pop_free,
                                   {"subnet": subnet_id, "n": count - len(rows), "after": 0})).all()
        if rows:
            self._free_after[subnet_id] = max(after, *(int(seq) for seq, _ in rows))
        return [str(address) for _, address in sorted(rows)]

    async def _return_positions(self, session: AsyncSession,
                                leases: Sequence[tuple[Any, ...]]) -> int:
        returned = 0
        for subnet_id, start, end in leases:
            try:
                layout = await self.layout(session, subnet_id)
            except errors.NotFound:
                continue
            candidates = list(layout.addresses(int(start), int(end)))
            if not candidates:
                continue
            taken = set((await execute(session, select(ALLOCATIONS.c.ip_address).where(
                ALLOCATIONS.c.subnet_id == subnet_id, ALLOCATIONS.c.ip_address.in_(candidates))
            )).scalars())
            free = [{"subnet_id": subnet_id, "ip_address": a} for a in candidates if a not in taken]
            if free:
                await execute(session, statements(session).insert_free, free)
                returned += len(free)
        return returned

    # ---- blocks claimed in a transaction become shared when it commits ---------------

    def _pending(self, session: AsyncSession) -> dict[str, list[_Block]]:
        pending: dict[str, list[_Block]] | None = session.info.get(self._pending_key)
        if pending is None:
            pending = {}
            session.info[self._pending_key] = pending
            event.listen(session.sync_session, "after_commit", self._confirm)
            event.listen(session.sync_session, "after_transaction_end", self._end)
        return pending

    def _confirm(self, session: Session) -> None:
        pending: dict[str, list[_Block]] = session.info.get(self._pending_key, {})
        for subnet_id, blocks in pending.items():
            self._blocks.setdefault(subnet_id, []).extend(b for b in blocks if b.left)
        pending.clear()

    def _end(self, session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:
            session.info.get(self._pending_key, {}).clear()


_ALLOCATORS: weakref.WeakKeyDictionary[Engine, AddressAllocator] = weakref.WeakKeyDictionary()


def _engine_of(bind: AsyncSession | AsyncEngine) -> Engine:
    if isinstance(bind, AsyncEngine):
        return bind.sync_engine
    sync_bind = bind.get_bind()
    return sync_bind.engine if isinstance(sync_bind, Connection) else sync_bind


def allocator_for(bind: AsyncSession | AsyncEngine) -> AddressAllocator:
    """The allocator of the database behind ``bind`` (created on first use)."""
    engine = _engine_of(bind)
    allocator = _ALLOCATORS.get(engine)
    if allocator is None:
        allocator = _ALLOCATORS[engine] = AddressAllocator()
    return allocator


def install_allocator(engine: AsyncEngine, allocator: AddressAllocator) -> None:
    """Use ``allocator`` (its block size, lease length, holder name) for ``engine``."""
    _ALLOCATORS[engine.sync_engine] = allocator
