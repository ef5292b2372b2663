"""One node agent per Node, started and stopped as Nodes come and go, and pod events routed to it.

The fleet follows the nodes informer: a new Node gets a ``NodeAgent`` with its own runtime
instance (from the runtime factory) fed with the pods already bound to it; a deleted Node's agent
is stopped (its runtime removes everything) and the pods still bound to it are deleted, as
Kubernetes' pod garbage collector does for pods of vanished nodes — a ReplicationController or
Job then recreates them and the scheduler places them elsewhere. Pod events are routed by
spec.nodeName through the pods informer's node index, so no agent ever sees another node's pods.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bayport.cluster.controllers.addresses import AddressPool
from bayport.cluster.controllers.events import EventRecorder
from bayport.cluster.controllers.informer import Informer, split_key
from bayport.cluster.controllers.node_agent import AgentSettings, NodeAgent
from bayport.cluster.controllers.port_claims import PortClaims
from bayport.cluster.errors import ApiError
from bayport.cluster.runtime.base import RuntimeFactory
from bayport.cluster.store import Store
from bayport.cluster.watch import DELETED

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NODE_INDEX = "node"


def node_of(pod: Obj) -> list[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if node else []


class NodeAgentFleet:
    def __init__(self, store: Store, pods: Informer, nodes: Informer, recorder: EventRecorder,
                 runtime_factory: RuntimeFactory, settings: AgentSettings,
                 fallback_pool: AddressPool | None = None) -> None:
        self.store = store
        self.pods = pods
        self.recorder = recorder
        self.runtime_factory = runtime_factory
        self.settings = settings
        self.fallback_pool = fallback_pool
        # One for all nodes: addresses are cluster-wide.
        self.claims = PortClaims(settings.pod_pool, settings.service_cidr)
        self.agents: dict[str, NodeAgent] = {}
        self._starting: dict[str, asyncio.Task[None]] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._active = False
        nodes.add_handler(self._on_node)
        pods.add_handler(self._on_pod)

    def activate(self) -> None:
        """Start agents for the nodes seen so far; later nodes start as they arrive."""
        self._active = True
        for name, agent in self.agents.items():
            self._launch(name, agent)

    async def stop(self, *, keep_runtime: bool = False) -> None:
        """Stop every agent; ``keep_runtime`` leaves their pods running (process shutdown)."""
        self._active = False
        for task in self._starting.values():
            task.cancel()
        await asyncio.gather(*self._starting.values(), return_exceptions=True)
        self._starting.clear()
        agents, self.agents = list(self.agents.values()), {}
        await asyncio.gather(*(a.stop(keep_runtime=keep_runtime) for a in agents), *self._stopping,
                             return_exceptions=True)
        if keep_runtime:
            await asyncio.gather(*(a.runtime.detach() for a in agents), return_exceptions=True)

    async def restart_agent(self, name: str) -> NodeAgent:
        """Replace a node's agent by a fresh one on the same runtime (a kubelet restart): the new
        agent adopts the pods the runtime still runs instead of starting them again."""
        old = self.agents[name]
        starting = self._starting.pop(name, None)
        if starting is not None:
            starting.cancel()
        await old.stop(keep_runtime=True)
        node = self.store.get_snapshot("nodes", None, name)
        agent = NodeAgent(node, self.store, old.runtime, self.recorder, self.settings, self.fallback_pool,
                          self.claims)
        self.agents[name] = agent
        for pod in self.pods.by_index(NODE_INDEX, name):
            agent.on_pod("ADDED", pod)
        if self._active:
            self._launch(name, agent)
        return agent

    def _launch(self, name: str, agent: NodeAgent) -> None:
        task = asyncio.create_task(agent.start(), name=f"node-agent-{name}")
        self._starting[name] = task
        task.add_done_callback(lambda t, n=name: self._started(n, t))   # type: ignore[misc]

    def _started(self, name: str, task: asyncio.Task[None]) -> None:
        if self._starting.get(name) is task:
            del self._starting[name]
        if not task.cancelled() and task.exception() is not None:
            log.error("node agent %s failed to start: %s", name, task.exception())

    def _on_node(self, kind: str, node: Obj, old: Obj | None) -> None:
        name = node["metadata"]["name"]
        agent = self.agents.get(name)
        if kind == DELETED:
            if agent is not None:
                del self.agents[name]
                starting = self._starting.pop(name, None)
                if starting is not None:
                    starting.cancel()
                task = asyncio.create_task(agent.stop())
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)
            self._collect_pods(name)
            return
        if agent is not None:
            agent.update_node(node)
            return
        agent = NodeAgent(node, self.store, self.runtime_factory(name), self.recorder, self.settings,
                          self.fallback_pool, self.claims)
        self.agents[name] = agent
        for pod in self.pods.by_index(NODE_INDEX, name):
            agent.on_pod("ADDED", pod)
        if self._active:
            self._launch(name, agent)

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        agent = self.agents.get(node) if node else None
        if agent is not None:
            agent.on_pod(kind, pod)

    def _collect_pods(self, node: str) -> None:
        """Delete pods bound to a node that no longer exists (pod garbage collection)."""
        for key in self.pods.index_keys(NODE_INDEX, node):
            namespace, name = split_key(key)
            try:
                self.store.delete_snapshot("pods", namespace, name, grace_period_seconds=0)
            except ApiError:
                continue
