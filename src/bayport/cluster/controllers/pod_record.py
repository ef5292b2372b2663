"""What a node agent knows about each of its pods and containers, and the PodStatus it implies.

``PodRecord``/``ContainerRecord`` are the agent's memory (kubelet's pod worker state): stage,
sandbox, address, each container's current and previous instance. ``build_status`` turns a
record into a Kubernetes PodStatus — phase by kubelet's rules, the five conditions with stable
lastTransitionTimes, containerStatuses with waiting/running/terminated states — which the agent
(``node_agent``) writes whenever it differs from what it wrote last.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Mapping
from typing import Any

from bayport.cluster.controllers.clock import parse_rfc3339, rfc3339
from bayport.cluster.runtime.base import ContainerExit, ContainerState, SandboxState

REFUSED_REASON = "PortRefused"       # status.reason of a pod whose port the node would not bind

Obj = dict[str, Any]


class Stage(enum.Enum):
    NEW = "new"                      # seen, nothing done yet
    WAITING_PORT = "waiting-port"    # waiting (bounded) for the kuryr.org/neutron-port annotation
    PORT_TIMED_OUT = "port-timed-out"
    STARTING = "starting"            # sandbox / containers being created
    RUNNING = "running"              # all containers started at least once
    DONE = "done"                    # terminal phase reached; sandbox stopped
    FOREIGN = "foreign"              # already terminal when this agent first saw it; left alone


class ContainerRecord:
    __slots__ = ("container_id", "early_exit", "exit_code", "finished_at", "image", "image_id",
                 "image_ref", "init", "last_terminated", "message", "name", "previous_id",
                 "restart_count", "restart_due", "restart_timer", "spec", "started_at",
                 "starting_id", "state", "term_reason", "waiting_reason")

    def __init__(self, spec: Mapping[str, Any], *, init: bool = False) -> None:
        self.spec = spec
        self.name: str = str(spec.get("name", ""))
        self.image: str = str(spec.get("image", ""))
        self.init = init
        self.image_ref: str = ""
        self.image_id: str = ""
        self.container_id: str | None = None
        self.previous_id: str | None = None
        self.starting_id: str | None = None
        self.early_exit: ContainerExit | None = None
        self.state = "waiting"
        self.waiting_reason = "ContainerCreating"
        self.message = ""
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.exit_code: int | None = None
        self.term_reason = ""
        self.restart_count = 0
        self.last_terminated: Obj | None = None
        self.restart_due = False
        self.restart_timer: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def succeeded(self) -> bool:
        return self.state == "terminated" and self.exit_code == 0

    def set_waiting(self, reason: str, message: str = "") -> None:
        self.state = "waiting"
        self.waiting_reason = reason
        self.message = message

    def set_running(self, container_id: str, started_at: float) -> str | None:
        """Make ``container_id`` current; returns the dead instance the agent may now remove."""
        obsolete = None
        if self.container_id is not None and self.container_id != container_id:
            obsolete = self.previous_id
            self.previous_id = self.container_id
        self.container_id = container_id
        self.starting_id = None
        self.state = "running"
        self.started_at = started_at
        self.finished_at = None
        self.exit_code = None
        self.term_reason = ""
        self.message = ""
        return obsolete

    def set_terminated(self, exit: ContainerExit) -> None:
        self.state = "terminated"
        self.exit_code = exit.exit_code
        self.term_reason = exit.reason
        self.message = exit.message
        self.started_at = exit.started_at
        self.finished_at = exit.finished_at

    def terminated_dict(self, scheme: str) -> Obj:
        state: Obj = {"exitCode": self.exit_code, "reason": self.term_reason,
                      "startedAt": rfc3339(self.started_at) if self.started_at else None,
                      "finishedAt": rfc3339(self.finished_at) if self.finished_at else None}
        if self.message:
            state["message"] = self.message
        if self.container_id:
            state["containerID"] = f"{scheme}://{self.container_id}"
        return state

    def back_off(self, scheme: str, reason: str = "CrashLoopBackOff", message: str = "") -> None:
        """The current instance ended and a restart is pending: it becomes lastState."""
        self.last_terminated = self.terminated_dict(scheme)
        self.set_waiting(reason, message)

    def status(self, scheme: str) -> Obj:
        if self.state == "running":
            state: Obj = {"running": {"startedAt": rfc3339(self.started_at or time.time())}}
        elif self.state == "terminated":
            state = {"terminated": self.terminated_dict(scheme)}
        else:
            waiting: Obj = {"reason": self.waiting_reason}
            if self.message:
                waiting["message"] = self.message
            state = {"waiting": waiting}
        out: Obj = {"name": self.name, "image": self.image_ref or self.image,
                    "imageID": self.image_id, "ready": self.running,
                    "restartCount": self.restart_count, "started": self.running,
                    "state": state,
                    "lastState": {"terminated": self.last_terminated} if self.last_terminated else {}}
        if self.container_id:
            out["containerID"] = f"{scheme}://{self.container_id}"
        return out


class PodRecord:
    __slots__ = (
        "conditions",
        "containers",
        "flush",
        "flush_lazy",
        "init_containers",
        "init_waiter",
        "ip",
        "ip_from_pool",
        "key",
        "mac",
        "name",
        "namespace",
        "op",
        "pod",
        "port_timer",
        "refused",
        "removed",
        "resync",
        "retry_timer",
        "sandbox_id",
        "stage",
        "start_failures",
        "start_time",
        "stopping",
        "uid",
        "written_rv",
        "written_status",
    )

    def __init__(self, pod: Obj, key: str) -> None:
        meta = pod["metadata"]
        self.key = key
        self.uid: str = meta["uid"]
        self.namespace: str = meta.get("namespace") or "default"
        self.name: str = meta["name"]
        self.pod = pod
        spec = pod.get("spec") or {}
        self.init_containers = [ContainerRecord(c, init=True) for c in spec.get("initContainers") or ()]
        self.containers = [ContainerRecord(c) for c in spec.get("containers") or ()]
        if self.init_containers:
            for c in self.containers:
                c.waiting_reason = "PodInitializing"
        self.stage = Stage.NEW
        self.sandbox_id: str | None = None
        self.ip: str | None = None
        self.mac: str | None = None
        self.ip_from_pool = False
        self.start_time: float | None = None
        self.op: asyncio.Task[None] | None = None
        self.resync = False
        self.removed = False
        self.stopping = False
        self.start_failures = 0
        self.port_timer: asyncio.TimerHandle | None = None
        self.refused: str | None = None      # why the node would not bind the pod's port (Failed)
        self.retry_timer: asyncio.TimerHandle | None = None
        self.init_waiter: asyncio.Future[int] | None = None
        self.flush: asyncio.Handle | None = None
        self.flush_lazy = False
        self.written_rv = 0
        self.written_status: Obj | None = None
        self.conditions: dict[str, tuple[str, str]] = {}   # type → (status, lastTransitionTime)

    def restore(self, sandbox: SandboxState) -> list[tuple[ContainerRecord, ContainerExit]] | None:
        """Rebuild this record from a sandbox the runtime kept running while no agent watched
        (a kubelet restart). Returns the main containers' exits nobody has handled yet, or None
        when the sandbox lacks some container and the pod should be started over."""
        status = self.pod.get("status") or {}
        known = [*(status.get("containerStatuses") or ()), *(status.get("initContainerStatuses") or ())]
        counts = {s.get("name"): int(s.get("restartCount") or 0) for s in known}
        latest: dict[str, ContainerState] = {}
        for state in sandbox.containers:
            if state.name not in latest or state.attempt >= latest[state.name].attempt:
                latest[state.name] = state
        if any(c.name not in latest for c in self.all_containers()):
            return None
        self.start_time = parse_rfc3339(status.get("startTime")) or time.time()
        for cond in status.get("conditions") or ():
            if cond.get("lastTransitionTime"):
                self.conditions[cond["type"]] = (cond.get("status", ""), cond["lastTransitionTime"])
        missed: list[tuple[ContainerRecord, ContainerExit]] = []
        for c in self.all_containers():
            found = latest[c.name]
            c.restart_count = max(counts.get(c.name, 0), found.attempt)
            c.image_ref, c.image_id = found.image, found.image_id
            c.set_running(found.container_id, found.started_at or time.time())
            if not found.running:
                exit = ContainerExit(sandbox.sandbox_id, found.container_id, c.name, found.exit_code or 0,
                                     found.reason or "Completed", found.started_at or 0.0,
                                     found.finished_at or 0.0)
                if c.init:
                    c.set_terminated(exit)
                else:
                    missed.append((c, exit))
        self.stage = Stage.RUNNING
        return missed

    @property
    def restart_policy(self) -> str:
        return str((self.pod.get("spec") or {}).get("restartPolicy") or "Always")

    def all_containers(self) -> list[ContainerRecord]:
        return self.init_containers + self.containers

    def find(self, name: str) -> ContainerRecord | None:
        return next((c for c in self.all_containers() if c.name == name), None)

    def find_by_id(self, container_id: str) -> ContainerRecord | None:
        for c in self.all_containers():
            if container_id in (c.container_id, c.starting_id):
                return c
        return None

    def should_restart(self, exit_code: int) -> bool:
        policy = self.restart_policy
        return policy == "Always" or (policy == "OnFailure" and exit_code != 0)

    def initialized(self) -> bool:
        return all(c.succeeded for c in self.init_containers)

    def phase(self) -> str:
        if self.refused is not None:
            return "Failed"
        if self.stage in (Stage.NEW, Stage.WAITING_PORT, Stage.PORT_TIMED_OUT):
            return "Pending"
        if not self.initialized():
            return "Failed" if self.stage is Stage.DONE else "Pending"
        running = waiting = stopped = succeeded = failed = 0
        for c in self.containers:
            if c.state == "running":
                running += 1
            elif c.state == "terminated":
                stopped += 1
                if c.exit_code == 0:
                    succeeded += 1
                else:
                    failed += 1
            elif c.last_terminated is not None:
                stopped += 1
            else:
                waiting += 1
        if waiting:
            return "Pending"
        if running:
            return "Running"
        if stopped:
            policy = self.restart_policy
            if policy == "Always":
                return "Running"
            if policy == "OnFailure":
                return "Succeeded" if stopped == succeeded else "Running"
            return "Failed" if failed else "Succeeded"
        return "Pending"

    def _condition(self, kind: str, status: bool, now: str, reason: str = "",
                   message: str = "") -> Obj:
        value = "True" if status else "False"
        known = self.conditions.get(kind)
        if known is None or known[0] != value:
            known = (value, now)
            self.conditions[kind] = known
        cond: Obj = {"type": kind, "status": value, "lastProbeTime": None,
                     "lastTransitionTime": known[1]}
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        return cond

    def build_status(self, host_ip: str | None, scheduled: Obj | None, scheme: str) -> Obj:
        now = rfc3339(time.time())
        phase = self.phase()
        terminal = phase in ("Succeeded", "Failed")
        unready = [c.name for c in self.containers if not c.running]
        ready = not unready and bool(self.containers)
        init_pending = [c.name for c in self.init_containers if not c.succeeded]
        sandbox = self.sandbox_id is not None and not self.stopping and not terminal
        conditions = [
            self._condition("PodReadyToStartContainers", sandbox, now),
            self._condition("Initialized", not init_pending, now,
                            *(("ContainersNotInitialized",
                               f"containers with incomplete status: [{' '.join(init_pending)}]")
                              if init_pending else ())),
        ]
        if ready:
            conditions.append(self._condition("Ready", True, now))
            conditions.append(self._condition("ContainersReady", True, now))
        else:
            reason = "PodCompleted" if terminal else "ContainersNotReady"
            message = "" if terminal else f"containers with unready status: [{' '.join(unready)}]"
            conditions.append(self._condition("Ready", False, now, reason, message))
            conditions.append(self._condition("ContainersReady", False, now, reason, message))
        conditions.append(scheduled or self._condition("PodScheduled", True, now))
        status: Obj = {"phase": phase, "conditions": conditions}
        if self.refused is not None:
            status["reason"], status["message"] = REFUSED_REASON, self.refused
        if host_ip:
            status["hostIP"] = host_ip
            status["hostIPs"] = [{"ip": host_ip}]
        if self.ip:
            status["podIP"] = self.ip
            status["podIPs"] = [{"ip": self.ip}]
        if self.start_time is not None:
            status["startTime"] = rfc3339(self.start_time)
        if self.init_containers:
            status["initContainerStatuses"] = [c.status(scheme) for c in self.init_containers]
        status["containerStatuses"] = [c.status(scheme) for c in self.containers]
        status["qosClass"] = qos_class(self.pod)
        return status


def qos_class(pod: Mapping[str, Any]) -> str:
    containers = list((pod.get("spec") or {}).get("containers") or ())
    requests_seen = limits_seen = False
    guaranteed = bool(containers)
    for c in containers:
        resources = c.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        requests_seen = requests_seen or bool(requests)
        limits_seen = limits_seen or bool(limits)
        for res in ("cpu", "memory"):
            if res not in limits or requests.get(res, limits[res]) != limits[res]:
                guaranteed = False
    if guaranteed:
        return "Guaranteed"
    return "Burstable" if requests_seen or limits_seen else "BestEffort"
