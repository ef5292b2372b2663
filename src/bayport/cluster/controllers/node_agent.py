"""The node agent (kubelet): runs the pods bound to one Node through that node's Runtime.

``NodeAgentFleet`` routes each pod event here by spec.nodeName. The agent keeps a ``PodRecord``
per pod and, per pod, at most one runtime operation in flight (``op``: start the pod, or restart
one container); anything that happens meanwhile sets ``resync`` and is looked at when the op ends,
so one pod's events are handled in order while pods proceed in parallel. Nothing polls: starts
are tasks that end, exits arrive from the runtime's listener, back-off and the port wait are
one-shot timers, and the port annotation arrives as a pod MODIFIED event.

Networking: the pod IP comes from the node's spec.podCIDR, or — with wait_for_port — from the
``kuryr.org/neutron-port`` annotation Bayport's network controller writes (WaitingForPort, then
PortTimeout if it does not come within port_wait_seconds; the pod then simply stays
ContainerCreating). Status is rebuilt from the record and written (status subresource) whenever
it differs from what the store holds; events mirror kubelet's (Pulled, Created, Started, BackOff).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bayport.cluster.controllers.addresses import (
    PORT_ANNOTATION,
    AddressPool,
    internal_ip_of,
    pod_cidr_of,
    port_address,
)
from bayport.cluster.controllers.events import NORMAL, WARNING, EventRecorder
from bayport.cluster.controllers.informer import object_key
from bayport.cluster.controllers.ownership import is_terminal
from bayport.cluster.controllers.pod_record import REFUSED_REASON, ContainerRecord, PodRecord, Stage
from bayport.cluster.controllers.port_claims import PortClaims
from bayport.cluster.controllers.volumes import claim_dir
from bayport.cluster.errors import ApiError
from bayport.cluster.paths import PathEscape
from bayport.cluster.runtime.base import (
    ContainerConfig,
    ContainerExit,
    ContainerRuntimeError,
    PodSandboxConfig,
    Runtime,
    SandboxState,
)
from bayport.cluster.store import Store
from bayport.cluster.watch import DELETED

log = logging.getLogger(__name__)

Obj = dict[str, Any]
COMPONENT = "kubelet"
STATUS_BATCH = 0.02          # seconds intermediate start-up progress may wait to fold into the next write


@dataclass(frozen=True)
class AgentSettings:
    wait_for_port: bool = False
    port_wait_seconds: float = 30.0
    data_dir: Path | None = None
    pod_pool: str | None = None      # where port addresses must lie (port_claims) ...
    service_cidr: str | None = None  # ... and must not


class NodeAgent:
    def __init__(self, node: Obj, store: Store, runtime: Runtime, recorder: EventRecorder,
                 settings: AgentSettings, fallback_pool: AddressPool | None = None,
                 claims: PortClaims | None = None) -> None:
        self.name: str = node["metadata"]["name"]
        self.claims = claims or PortClaims(settings.pod_pool, settings.service_cidr)
        self.store = store
        self.runtime = runtime
        self.recorder = recorder
        self.settings = settings
        self.host_ip = internal_ip_of(node)
        cidr = pod_cidr_of(node)
        self.pool = AddressPool(cidr) if cidr else fallback_pool
        self._scheme = runtime.name
        self._records: dict[str, PodRecord] = {}
        self._by_sandbox: dict[str, PodRecord] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready = False
        self._stopped = False

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the runtime, adopt what it still runs, then start everything bound here."""
        await self.runtime.open(self._on_exit)
        self._adopt(await self.runtime.list_pod_sandboxes())
        if self._stopped:
            return
        self._ready = True
        for rec in list(self._records.values()):
            self._sync(rec)

    async def stop(self, *, keep_runtime: bool = False) -> None:
        """Cancel in-flight work and let the runtime remove everything (node gone / shutdown).
        ``keep_runtime`` leaves the runtime's pods running, as a kubelet restart does."""
        self._ready = False
        self._stopped = True
        pending: list[asyncio.Task[None]] = list(self._tasks)
        for rec in self._records.values():
            self._cancel_timers(rec)
            if rec.op is not None:
                rec.op.cancel()
                pending.append(rec.op)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if not keep_runtime:
            with contextlib.suppress(Exception):
                await self.runtime.close()
        for rec in self._records.values():
            self._release_ip(rec)
        self._records.clear()
        self._by_sandbox.clear()

    def update_node(self, node: Obj) -> None:
        self.host_ip = internal_ip_of(node) or self.host_ip

    def record(self, key: str) -> PodRecord | None:
        return self._records.get(key)

    def __len__(self) -> int:
        return len(self._records)

    # --- pod events -------------------------------------------------------------------------------

    def on_pod(self, kind: str, pod: Obj) -> None:
        key = object_key(pod)
        uid = pod["metadata"]["uid"]
        rec = self._records.get(key)
        if kind == DELETED:
            if rec is not None and rec.uid == uid:
                rec.pod = pod
                self._remove(rec)
            return
        if rec is not None and rec.uid != uid:
            self._remove(rec)
            rec = None
        if rec is None:
            rec = PodRecord(pod, key)
            self._records[key] = rec
        else:
            rec.pod = pod
            rv = int(pod["metadata"].get("resourceVersion") or 0)
            if rv > rec.written_rv and rec.written_status is not None and \
                    pod.get("status") != rec.written_status and rec.stage is not Stage.FOREIGN:
                self._mark_dirty(rec)
        self._sync(rec)

    def _sync(self, rec: PodRecord) -> None:
        if not self._ready or rec.removed:
            return
        if rec.op is not None:
            rec.resync = True
            return
        stage = rec.stage
        if stage in (Stage.NEW, Stage.WAITING_PORT, Stage.PORT_TIMED_OUT):
            if stage is Stage.NEW and is_terminal(rec.pod) and rec.start_time is None:
                rec.stage = Stage.FOREIGN        # finished before this agent ran it: leave it be
                return
            if rec.retry_timer is not None or not self._prepare_network(rec):
                return
            rec.stage = Stage.STARTING
            self._run_op(rec, self._start_pod(rec))
        elif stage is Stage.RUNNING:
            due = next((c for c in rec.containers if c.restart_due), None)
            if due is not None:
                due.restart_due = False
                self._run_op(rec, self._restart_container(rec, due))

    def _run_op(self, rec: PodRecord, coro: Coroutine[Any, Any, None]) -> None:
        rec.op = asyncio.create_task(self._op(rec, coro), name=f"pod-{rec.key}")

    async def _op(self, rec: PodRecord, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except ContainerRuntimeError as exc:
            self._start_failed(rec, exc.reason, exc.message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("%s: starting pod %s failed", self.name, rec.key)
            self._start_failed(rec, "RunContainerError", str(exc))
        finally:
            rec.op = None
            if self._ready:
                if rec.removed:
                    self._spawn(self._teardown(rec))
                else:
                    self._mark_dirty(rec)
                    if rec.resync:
                        rec.resync = False
                        self._sync(rec)

    # --- networking -------------------------------------------------------------------------------

    def _prepare_network(self, rec: PodRecord) -> bool:
        spec = rec.pod.get("spec") or {}
        if spec.get("hostNetwork"):
            rec.ip = self.host_ip
            return True
        if self.settings.wait_for_port:
            addr = port_address(rec.pod)
            if addr is None:
                if rec.stage is Stage.NEW:
                    self._begin_port_wait(rec)
                return False
            if rec.port_timer is not None:
                rec.port_timer.cancel()
                rec.port_timer = None
            refusal = self.claims.claim(rec.pod, addr[0])
            if refusal is not None:
                self._refuse_port(rec, refusal)
                return False
            rec.ip, rec.mac = addr
            return True
        if rec.ip is None:
            ip = self.pool.allocate() if self.pool is not None else None
            if ip is None:
                where = self.pool.cidr if self.pool is not None else "(node has no spec.podCIDR)"
                self._event(rec, WARNING, "FailedCreatePodSandBox",
                            f"Failed to create pod sandbox: no IP addresses available in range {where}")
                self._retry_later(rec)
                return False
            rec.ip = ip
            rec.ip_from_pool = True
        return True

    def _begin_port_wait(self, rec: PodRecord) -> None:
        wait = self.settings.port_wait_seconds
        rec.stage = Stage.WAITING_PORT
        rec.start_time = rec.start_time or time.time()
        self._event(rec, NORMAL, "WaitingForPort",
                    f"Waiting up to {wait:g}s for the {PORT_ANNOTATION} annotation")
        rec.port_timer = asyncio.get_running_loop().call_later(wait, self._port_timeout, rec)
        self._mark_dirty(rec)

    def _port_timeout(self, rec: PodRecord) -> None:
        rec.port_timer = None
        if rec.removed or rec.stage is not Stage.WAITING_PORT:
            return
        rec.stage = Stage.PORT_TIMED_OUT
        self._event(rec, WARNING, "PortTimeout",
                    f"No {PORT_ANNOTATION} annotation after {self.settings.port_wait_seconds:g}s; "
                    "the pod stays ContainerCreating until one is set")

    def _refuse_port(self, rec: PodRecord, message: str) -> None:
        """The annotation names an address this pod may not have: fail the pod, bind nothing."""
        rec.refused = message
        rec.stage = Stage.DONE
        for c in rec.all_containers():
            c.set_waiting(REFUSED_REASON, message)
        self._event(rec, WARNING, REFUSED_REASON, message)
        self._mark_dirty(rec)

    def _release_ip(self, rec: PodRecord) -> None:
        self.claims.release(rec.uid)
        if rec.ip_from_pool and rec.ip and self.pool is not None:
            self.pool.release(rec.ip)
        rec.ip_from_pool = False

    # --- starting -------------------------------------------------------------------------------

    def _sandbox_config(self, rec: PodRecord) -> PodSandboxConfig:
        spec = rec.pod.get("spec") or {}
        volume_dirs: dict[str, Path] = {}
        if self.settings.data_dir is not None:
            for volume in spec.get("volumes") or ():
                claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
                if claim:  # a name that is a path gets no directory: the runtime then refuses the pod
                    with contextlib.suppress(PathEscape):
                        volume_dirs[volume["name"]] = claim_dir(self.settings.data_dir, rec.namespace,
                                                                str(claim))
        return PodSandboxConfig(uid=rec.uid, namespace=rec.namespace, name=rec.name, node_name=self.name,
                                pod=rec.pod, pod_ip=rec.ip, mac_address=rec.mac,
                                host_network=bool(spec.get("hostNetwork")), volume_dirs=volume_dirs)

    async def _start_pod(self, rec: PodRecord) -> None:
        rec.start_time = rec.start_time or time.time()
        self._mark_dirty(rec)                    # accepted: Pending, ContainerCreating, hostIP, startTime
        sandbox_id = await self.runtime.run_pod_sandbox(self._sandbox_config(rec))
        rec.sandbox_id = sandbox_id
        self._by_sandbox[sandbox_id] = rec
        if rec.removed:
            return
        self._mark_dirty(rec, lazy=True)
        for c in rec.init_containers:
            while not c.succeeded:
                code = await self._run_init(rec, c)
                if rec.removed or code == 0:
                    break
                if rec.restart_policy == "Never":
                    self._finish(rec)
                    return
                delay = self._backoff(c.restart_count)
                c.back_off(self._scheme)
                self._back_off_event(rec, c)
                self._mark_dirty(rec)
                await self._pause(rec, delay)
                if rec.removed:
                    return
                c.restart_count += 1
            if rec.removed:
                return
        for c in rec.containers:
            if c.container_id is None:
                c.set_waiting("ContainerCreating")
        self._mark_dirty(rec, lazy=True)
        for c in rec.containers:
            if c.container_id is None:
                await self._launch(rec, c)
                if rec.removed:
                    return
        if rec.stage is Stage.STARTING:
            rec.stage = Stage.RUNNING
        rec.start_failures = 0

    async def _run_init(self, rec: PodRecord, c: ContainerRecord) -> int:
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        rec.init_waiter = waiter
        await self._launch(rec, c)
        code = await waiter
        rec.init_waiter = None
        return code

    async def _pause(self, rec: PodRecord, delay: float) -> None:
        """Sleep ``delay`` unless the pod is removed first (``_remove`` resolves the waiter)."""
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        rec.init_waiter = waiter

        def wake() -> None:
            if not waiter.done():
                waiter.set_result(0)

        timer = asyncio.get_running_loop().call_later(delay, wake)
        try:
            await waiter
        finally:
            timer.cancel()
            rec.init_waiter = None

    async def _launch(self, rec: PodRecord, c: ContainerRecord) -> None:
        field = f"spec.{'initContainers' if c.init else 'containers'}{{{c.name}}}"
        policy = str(c.spec.get("imagePullPolicy") or "IfNotPresent")
        image = await self.runtime.pull_image(c.image, policy)
        if rec.removed or rec.sandbox_id is None:
            return
        if image.pulled:
            self._event(rec, NORMAL, "Pulling", f'Pulling image "{c.image}"', field)
            self._event(rec, NORMAL, "Pulled", f'Successfully pulled image "{c.image}"', field)
        else:
            self._event(rec, NORMAL, "Pulled", f'Container image "{c.image}" already present on machine',
                        field)
        c.image_ref, c.image_id = image.image, image.image_id
        config = ContainerConfig(name=c.name, image=c.image, spec=c.spec, attempt=c.restart_count,
                                 init=c.init)
        container_id = await self.runtime.create_container(rec.sandbox_id, config, image)
        c.starting_id = container_id
        self._event(rec, NORMAL, "Created", f"Created container {c.name}", field)
        if rec.removed:
            return
        started = await self.runtime.start_container(container_id)
        obsolete = c.set_running(container_id, started)
        if obsolete is not None:
            self._spawn(self.runtime.remove_container(obsolete))
        self._event(rec, NORMAL, "Started", f"Started container {c.name}", field)
        self._mark_dirty(rec, lazy=True)
        early, c.early_exit = c.early_exit, None
        if early is not None:
            self._apply_exit(rec, c, early)

    def _start_failed(self, rec: PodRecord, reason: str, message: str) -> None:
        if rec.removed:
            return
        for c in rec.all_containers():
            if c.state == "waiting":
                c.set_waiting(reason, message)
        self._event(rec, WARNING, "Failed", message)
        rec.start_failures += 1
        sandbox_id, rec.sandbox_id = rec.sandbox_id, None
        if sandbox_id is not None:
            self._by_sandbox.pop(sandbox_id, None)
            self._spawn(self._remove_sandbox(sandbox_id))
        for c in rec.all_containers():
            c.container_id = c.starting_id = None
        rec.stage = Stage.NEW
        self._retry_later(rec)

    def _retry_later(self, rec: PodRecord) -> None:
        delay = self._backoff(rec.start_failures)

        def retry() -> None:
            rec.retry_timer = None
            self._sync(rec)

        rec.retry_timer = asyncio.get_running_loop().call_later(delay, retry)

    def _backoff(self, count: int) -> float:
        return float(min(self.runtime.restart_backoff_initial * 2 ** min(count, 30),
                         self.runtime.restart_backoff_max))

    # --- exits and restarts -----------------------------------------------------------------------

    def _on_exit(self, exit: ContainerExit) -> None:
        rec = self._by_sandbox.get(exit.sandbox_id)
        if rec is None or rec.removed or rec.stage is Stage.DONE:
            return
        c = rec.find_by_id(exit.container_id)
        if c is None:
            return
        if c.container_id != exit.container_id:
            c.early_exit = exit                  # exited before start_container returned
            return
        if c.state != "running":
            return
        self._apply_exit(rec, c, exit)

    def _apply_exit(self, rec: PodRecord, c: ContainerRecord, exit: ContainerExit) -> None:
        c.set_terminated(exit)
        if c.init:
            waiter = rec.init_waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(exit.exit_code)
        elif rec.should_restart(exit.exit_code):
            c.back_off(self._scheme)
            self._back_off_event(rec, c)
            c.restart_timer = asyncio.get_running_loop().call_later(
                self._backoff(c.restart_count), self._restart_due, rec, c)
        elif all(other.state == "terminated" for other in rec.containers):
            self._finish(rec)
        self._mark_dirty(rec)

    def _back_off_event(self, rec: PodRecord, c: ContainerRecord) -> None:
        field = f"spec.{'initContainers' if c.init else 'containers'}{{{c.name}}}"
        self._event(rec, WARNING, "BackOff", f"Back-off restarting failed container {c.name} in pod "
                    f"{rec.name}_{rec.namespace}({rec.uid})", field)

    def _restart_due(self, rec: PodRecord, c: ContainerRecord) -> None:
        c.restart_timer = None
        if rec.removed or rec.stage is Stage.DONE:
            return
        c.restart_due = True
        self._sync(rec)

    async def _restart_container(self, rec: PodRecord, c: ContainerRecord) -> None:
        c.restart_count += 1
        try:
            await self._launch(rec, c)
        except ContainerRuntimeError as exc:
            c.set_waiting(exc.reason, exc.message)
            self._event(rec, WARNING, "Failed", exc.message, f"spec.containers{{{c.name}}}")
            c.restart_timer = asyncio.get_running_loop().call_later(
                self._backoff(c.restart_count), self._restart_due, rec, c)

    def _finish(self, rec: PodRecord) -> None:
        """Every container is done for good: the pod is terminal; stop its sandbox, free its IP."""
        rec.stage = Stage.DONE
        self._cancel_timers(rec)
        self._release_ip(rec)
        if rec.sandbox_id is not None:
            self._spawn(self.runtime.stop_pod_sandbox(rec.sandbox_id, 0))
        self._mark_dirty(rec)

    # --- removal --------------------------------------------------------------------------------

    def _remove(self, rec: PodRecord) -> None:
        rec.removed = True
        self._records.pop(rec.key, None)
        self._cancel_timers(rec)
        if rec.flush is not None:
            rec.flush.cancel()
            rec.flush = None
        waiter = rec.init_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(-1)
        self._release_ip(rec)
        if rec.op is None and self._ready:
            self._spawn(self._teardown(rec))

    async def _teardown(self, rec: PodRecord) -> None:
        sandbox_id, rec.sandbox_id = rec.sandbox_id, None
        if sandbox_id is None:
            return
        if self._by_sandbox.get(sandbox_id) is rec:
            del self._by_sandbox[sandbox_id]
        grace = float(rec.pod["metadata"].get("deletionGracePeriodSeconds") or 0)
        await self.runtime.stop_pod_sandbox(sandbox_id, grace)
        await self.runtime.remove_pod_sandbox(sandbox_id)

    async def _remove_sandbox(self, sandbox_id: str) -> None:
        await self.runtime.stop_pod_sandbox(sandbox_id, 0)
        await self.runtime.remove_pod_sandbox(sandbox_id)

    @staticmethod
    def _cancel_timers(rec: PodRecord) -> None:
        for timer in (rec.port_timer, rec.retry_timer, *(c.restart_timer for c in rec.all_containers())):
            if timer is not None:
                timer.cancel()
        rec.port_timer = rec.retry_timer = None
        for c in rec.all_containers():
            c.restart_timer = None
            c.restart_due = False

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(self._guarded(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except ContainerRuntimeError as exc:
            log.warning("%s: runtime cleanup failed: %s", self.name, exc.message)
        except Exception:
            log.exception("%s: runtime cleanup failed", self.name)

    # --- adoption ---------------------------------------------------------------------------------

    def _adopt(self, sandboxes: Iterable[SandboxState]) -> None:
        by_uid = {rec.uid: rec for rec in self._records.values()}
        for sandbox in sandboxes:
            rec = by_uid.get(sandbox.uid)
            if rec is None or rec.sandbox_id is not None or not sandbox.ready or is_terminal(rec.pod):
                self._spawn(self._remove_sandbox(sandbox.sandbox_id))
                continue
            self._adopt_one(rec, sandbox)

    def _adopt_one(self, rec: PodRecord, sandbox: SandboxState) -> None:
        missed = rec.restore(sandbox)
        if missed is None:                       # a half-started pod: start it over
            self._spawn(self._remove_sandbox(sandbox.sandbox_id))
            self._mark_dirty(rec)
            return
        rec.sandbox_id = sandbox.sandbox_id
        self._by_sandbox[sandbox.sandbox_id] = rec
        rec.ip = sandbox.pod_ip
        if rec.ip and not (rec.pod.get("spec") or {}).get("hostNetwork"):
            self.claims.adopt(rec.uid, rec.ip)
        if rec.ip and self.pool is not None and self.pool.contains(rec.ip):
            rec.ip_from_pool = self.pool.reserve(rec.ip)
        for c, exit in missed:
            self._apply_exit(rec, c, exit)
        self._mark_dirty(rec)

    # --- status and events ------------------------------------------------------------------------

    def _mark_dirty(self, rec: PodRecord, *, lazy: bool = False) -> None:
        """Schedule a status write: at once, or — for intermediate progress a start usually moves
        past within milliseconds (sandbox up, first of several containers started) — after
        STATUS_BATCH, so it folds into the next write instead of costing one of its own."""
        if rec.removed or self._stopped:
            return
        if rec.flush is not None:
            if lazy or not rec.flush_lazy:
                return
            rec.flush.cancel()
        loop = asyncio.get_running_loop()
        rec.flush_lazy = lazy
        if lazy:
            rec.flush = loop.call_later(STATUS_BATCH, self._flush, rec)
        else:
            rec.flush = loop.call_soon(self._flush, rec)

    def _flush(self, rec: PodRecord) -> None:
        rec.flush = None
        if rec.removed or self._stopped:
            return
        try:
            current = self.store.get_snapshot("pods", rec.namespace, rec.name)
        except ApiError:
            return
        if current["metadata"]["uid"] != rec.uid:
            return
        old_status = current.get("status") or {}
        scheduled = next((c for c in old_status.get("conditions") or ()
                          if c.get("type") == "PodScheduled"), None)
        status = rec.build_status(self.host_ip, scheduled, self._scheme)
        if status == old_status:
            rec.written_status = old_status
            rec.written_rv = int(current["metadata"]["resourceVersion"])
            return
        body = {"metadata": {"name": rec.name, "namespace": rec.namespace, "uid": rec.uid},
                "status": status}
        try:
            stored = self.store.update_owned("pods", body, subresource="status")
        except ApiError as exc:
            log.debug("%s: status of %s not written: %s", self.name, rec.key, exc.message)
            return
        rec.written_status = stored.get("status")
        rec.written_rv = int(stored["metadata"]["resourceVersion"])

    def _event(self, rec: PodRecord, type_: str, reason: str, message: str, field: str = "") -> None:
        self.recorder.record(rec.pod, type_, reason, message, component=COMPONENT, host=self.name,
                             field_path=field)
