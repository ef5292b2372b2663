"""The embedded cluster's controllers: what makes stored objects live.

``ControllerManager`` (built and started by ``cluster.host``) wires one shared informer per kind
to the scheduler, the node agents (one per Node, via ``node_fleet``), the replication, job,
endpoints, service-IP, volume and namespace controllers, all in-process against the ``Store``
(synchronous calls, async watches; never HTTP). The apiserver calls back into it for pod logs and
for ClusterIPs at service create time. Runtimes live in ``cluster.runtime``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from bayport.cluster.controllers.addresses import AddressPool
from bayport.cluster.controllers.endpoints import EndpointsController
from bayport.cluster.controllers.events import EventRecorder
from bayport.cluster.controllers.informer import Informer, object_key
from bayport.cluster.controllers.job import JobController
from bayport.cluster.controllers.namespaces import NamespaceController
from bayport.cluster.controllers.node_agent import AgentSettings
from bayport.cluster.controllers.node_fleet import NODE_INDEX, NodeAgentFleet, node_of
from bayport.cluster.controllers.ownership import controller_uid
from bayport.cluster.controllers.replication import NAMESPACE_INDEX, OWNER_INDEX, ReplicationManager
from bayport.cluster.controllers.scheduler import Scheduler
from bayport.cluster.controllers.service_ips import ServiceIPAllocator
from bayport.cluster.controllers.volumes import VolumeBinder
from bayport.cluster.errors import bad_request
from bayport.cluster.runtime import ContainerRuntimeError, RuntimeFactory, make_runtime_factory
from bayport.cluster.spec import ClusterSpec
from bayport.cluster.store import Store

__all__ = ["ControllerManager"]

Obj = dict[str, Any]
_EVENT_SWEEP_EVERY = 60.0
# the kinds with informers, in start order: nodes before pods so agents exist when pods arrive
_KINDS = ("namespaces", "nodes", "services", "persistentvolumeclaims", "replicationcontrollers",
          "jobs", "pods")


def _namespace_of(obj: Obj) -> list[str]:
    ns = obj["metadata"].get("namespace")
    return [ns] if ns else []


def _controller_of(obj: Obj) -> list[str]:
    uid = controller_uid(obj)
    return [uid] if uid else []


class ControllerManager:
    def __init__(self, store: Store, spec: ClusterSpec, *,
                 runtime_factory: RuntimeFactory | None = None,
                 event_ttl: float = 3600.0) -> None:
        self.store = store
        self.spec = spec
        self.recorder = EventRecorder(store, ttl=event_ttl)
        self.informers = {kind: Informer(store, kind) for kind in _KINDS}
        pods = self.informers["pods"]
        pods.add_index(NODE_INDEX, node_of)
        pods.add_index(OWNER_INDEX, _controller_of)
        pods.add_index(NAMESPACE_INDEX, _namespace_of)
        self.informers["replicationcontrollers"].add_index(NAMESPACE_INDEX, _namespace_of)
        self.service_ips = ServiceIPAllocator(store, self.informers["services"], spec.service_cidr)
        self.scheduler = Scheduler(store, pods, self.informers["nodes"], self.recorder)
        factory = runtime_factory or make_runtime_factory(spec)
        settings = AgentSettings(wait_for_port=spec.wait_for_port_annotation,
                                 port_wait_seconds=spec.port_wait_seconds, data_dir=spec.data_dir,
                                 pod_pool=spec.pod_cidr, service_cidr=spec.service_cidr)
        self.fleet = NodeAgentFleet(store, pods, self.informers["nodes"], self.recorder, factory, settings,
                                    fallback_pool=AddressPool(spec.pod_cidr))
        self.replication = ReplicationManager(store, self.informers["replicationcontrollers"], pods,
                                              self.recorder)
        self.jobs = JobController(store, self.informers["jobs"], pods, self.recorder)
        self.endpoints = EndpointsController(store, self.informers["services"], pods)
        self.volumes = VolumeBinder(store, self.informers["persistentvolumeclaims"], spec.data_dir)
        self.namespaces = NamespaceController(store, self.informers["namespaces"])
        self._queues = [self.scheduler.queue, self.replication.queue, self.jobs.queue,
                        self.endpoints.queue, self.volumes.queue, self.namespaces.queue]
        self._sweeper: asyncio.Task[None] | None = None
        self._started = False

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        for queue in self._queues:
            queue.start()
        for kind in _KINDS:
            self.informers[kind].start()
        self.fleet.activate()
        self._sweeper = asyncio.create_task(self._sweep_events(), name="event-expiry")

    async def stop(self, *, keep_runtime: bool = False) -> None:
        """Stop every controller; ``keep_runtime`` leaves the nodes' pods running for adoption."""
        if not self._started:
            return
        self._started = False
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for informer in self.informers.values():
            await informer.stop()
        for queue in self._queues:
            await queue.stop()
        await self.fleet.stop(keep_runtime=keep_runtime)
        await self.volumes.stop()

    def allocate_service_ip(self, service: Obj) -> str | None:
        """The ClusterIP for a Service being created (apiserver create path; synchronous)."""
        return self.service_ips.allocate(service)

    async def pod_logs(self, namespace: str, name: str, container: str | None, *,
                       previous: bool = False, follow: bool = False,
                       tail_lines: int | None = None, timestamps: bool = False) -> AsyncIterator[bytes]:
        """The log stream of one container. Awaiting this validates the request and raises
        ApiError (404 unknown pod, 400 bad container / not started / no previous instance) before
        any byte is produced; iterate the result for the chunks."""
        pod = self.store.get_snapshot("pods", namespace, name)
        spec = pod.get("spec") or {}
        names = [c["name"] for c in spec.get("containers") or ()]
        init_names = [c["name"] for c in spec.get("initContainers") or ()]
        if container is None:
            if len(names) != 1:
                message = (f"a container name must be specified for pod {name}, "
                           f"choose one of: [{' '.join(names)}]")
                if init_names:
                    message += f" or one of the init containers: [{' '.join(init_names)}]"
                raise bad_request(message)
            container = names[0]
        elif container not in names and container not in init_names:
            raise bad_request(f"container {container} is not valid for pod {name}")
        agent = self.fleet.agents.get(spec.get("nodeName") or "")
        rec = agent.record(object_key(pod)) if agent is not None else None
        record = rec.find(container) if rec is not None and rec.uid == pod["metadata"]["uid"] else None
        if previous:
            container_id = None
            if record is not None and record.last_terminated:
                container_id = record.container_id if record.state == "waiting" else record.previous_id
            if container_id is None:
                raise bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
        else:
            container_id = None
            if record is not None and (record.state != "waiting" or record.last_terminated):
                container_id = record.container_id
            if container_id is None:
                reason = record.waiting_reason if record is not None else "ContainerCreating"
                raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        assert agent is not None
        return self._stream(agent.runtime.container_logs(container_id, follow=follow, tail_lines=tail_lines,
                                                         timestamps=timestamps))

    @staticmethod
    async def _stream(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                yield chunk
        except ContainerRuntimeError:
            return

    async def _sweep_events(self) -> None:
        interval = min(_EVENT_SWEEP_EVERY, max(self.recorder.ttl / 4, 0.05))
        while True:
            await asyncio.sleep(interval)
            self.recorder.expire()
