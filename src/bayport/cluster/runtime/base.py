"""The container runtime interface a node agent drives (CRI-shaped, one instance per node).

The node agent (``cluster.controllers.node_agent``) decides *what* should run — restart policy,
back-off, pod phase, status, events — and calls a ``Runtime`` for *how*: create a pod sandbox,
pull an image, create and start a container, stop and remove things, read logs, list what runs.
The runtime reports container exits back through the listener given to ``open``. Implementations:
``runtime.simulated`` (no processes; the default) and a podman runtime that shells out to podman.

Contract for implementations:

* Every method runs on the agent's event loop and must not block it (use subprocesses, threads
  or async clients for real work).
* ``run_pod_sandbox`` is called once per pod start; the agent never calls it twice for one pod
  uid without removing the first sandbox. Containers are created one at a time, in spec order.
* A restart is a *new* container (``create_container`` with ``attempt`` + 1) in the same sandbox.
  The runtime keeps a dead container (for ``container_logs`` of the previous instance) until the
  agent calls ``remove_container`` or ``remove_pod_sandbox``.
* Exits of containers the agent started are reported exactly once through the listener, from the
  event loop thread. Exits caused by ``stop_pod_sandbox`` may be reported or not; the agent
  ignores reports for sandboxes it is stopping.
* Failures raise ``ContainerRuntimeError`` with a Kubernetes waiting reason (``ErrImagePull``,
  ``CreateContainerError``, ``RunContainerError``, ``NotFound`` …); the agent shows that reason in
  the container status, records a Warning event and retries with back-off.
* ``list_pod_sandboxes`` returns what this node's runtime still has (running or exited), so an
  agent that restarts adopts live pods instead of starting them twice; ``close`` stops and
  removes everything this instance created.
"""

from __future__ import annotations

import datetime
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar


class ContainerRuntimeError(Exception):
    """A runtime operation failed; ``reason`` is the container waiting reason to show."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class PodSandboxConfig:
    """Everything a runtime needs to create the pod's shared environment."""

    uid: str
    namespace: str
    name: str
    node_name: str
    pod: Mapping[str, Any]            # the Pod object (metadata, spec) as the agent saw it
    pod_ip: str | None                # the address the node assigned (None with hostNetwork)
    mac_address: str | None = None    # from the kuryr.org/neutron-port annotation, when present
    host_network: bool = False
    volume_dirs: Mapping[str, Path] = field(default_factory=dict)   # volume name → host directory

    @property
    def annotations(self) -> Mapping[str, str]:
        return self.pod.get("metadata", {}).get("annotations") or {}

    @property
    def owner_kinds(self) -> tuple[str, ...]:
        refs = self.pod.get("metadata", {}).get("ownerReferences") or []
        return tuple(str(r.get("kind", "")) for r in refs)


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    """One container instance to create; ``spec`` is its entry in spec.(init)containers."""

    name: str
    image: str
    spec: Mapping[str, Any]
    attempt: int = 0                  # restart count of this instance; 0 for the first one
    init: bool = False


@dataclass(frozen=True, slots=True)
class ImageInfo:
    image: str                        # reference as shown in status (docker.io/library/nginx:1.25)
    image_id: str                     # content id shown as imageID (…@sha256:…)
    pulled: bool                      # False: it was already present on the node


@dataclass(frozen=True, slots=True)
class ContainerExit:
    """A container the agent started has exited (reported through the ``open`` listener)."""

    sandbox_id: str
    container_id: str
    container_name: str
    exit_code: int
    reason: str                       # Completed | Error | OOMKilled | ContainerCannotRun …
    started_at: float                 # epoch seconds
    finished_at: float
    message: str = ""


@dataclass(frozen=True, slots=True)
class ContainerState:
    """A container as the runtime currently knows it (for adoption)."""

    container_id: str
    name: str
    attempt: int
    image: str
    image_id: str
    init: bool
    running: bool
    started_at: float | None
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SandboxState:
    sandbox_id: str
    uid: str
    namespace: str
    name: str
    pod_ip: str | None
    ready: bool                       # False once stopped
    containers: tuple[ContainerState, ...] = ()


ExitListener = Callable[[ContainerExit], None]


class Runtime(ABC):
    """One node's container runtime. See the module docstring for the behavioural contract."""

    name: ClassVar[str]
    # Crash-loop back-off the agent applies between restarts: initial delay doubling up to max.
    # Kubelet uses 10 s .. 300 s; a simulated runtime picks much smaller figures.
    restart_backoff_initial: ClassVar[float] = 10.0
    restart_backoff_max: ClassVar[float] = 300.0

    @abstractmethod
    async def open(self, on_exit: ExitListener) -> None:
        """Connect/prepare; remember ``on_exit`` for exit reports. Called once before anything."""

    @abstractmethod
    async def close(self) -> None:
        """Stop and remove every sandbox and container this instance created."""

    async def detach(self) -> None:
        """Stop watching but leave every sandbox and container running, for the next process's
        agent to adopt (a shutdown that is not the node's end). Default: nothing to let go."""

    @abstractmethod
    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        """Create the pod's sandbox (network identity, volumes); returns the sandbox id."""

    @abstractmethod
    async def pull_image(self, image: str, pull_policy: str) -> ImageInfo:
        """Make ``image`` present per ``pull_policy`` (Always | IfNotPresent | Never)."""

    @abstractmethod
    async def create_container(self, sandbox_id: str, container: ContainerConfig,
                               image: ImageInfo) -> str:
        """Create (not start) a container in the sandbox; returns its container id."""

    @abstractmethod
    async def start_container(self, container_id: str) -> float:
        """Start a created container; returns its start time (epoch seconds)."""

    @abstractmethod
    async def remove_container(self, container_id: str) -> None:
        """Remove a dead container (an older instance the agent no longer needs)."""

    @abstractmethod
    async def stop_pod_sandbox(self, sandbox_id: str, grace_period: float) -> None:
        """Kill the sandbox's containers (SIGTERM, then SIGKILL after the grace period)."""

    @abstractmethod
    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        """Remove the sandbox and all its containers; unknown ids are ignored."""

    @abstractmethod
    async def list_pod_sandboxes(self) -> list[SandboxState]:
        """Everything this node's runtime has, for adoption after an agent restart."""

    @abstractmethod
    def container_logs(self, container_id: str, *, follow: bool = False,
                       tail_lines: int | None = None, timestamps: bool = False) -> AsyncIterator[bytes]:
        """The container's output as chunks of whole lines; with ``follow``, keep yielding until
        the container exits or is removed; with ``timestamps``, each line starts with the time it
        was written (``log_timestamp``) and a space, as the kubelet's ``?timestamps=true``.
        Raises ContainerRuntimeError("NotFound", …) if unknown."""


_STAMP = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d) ")


def log_timestamp(ts: float) -> str:
    """RFC 3339 in UTC with nine fractional digits, the kubelet's log timestamp format."""
    whole = int(ts)
    moment = datetime.datetime.fromtimestamp(whole, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{moment}.{round((ts - whole) * 1e9) % 1_000_000_000:09d}Z"


def utc_log_line(line: bytes) -> bytes:
    """A line stamped in any RFC 3339 offset (``podman logs --timestamps``) restamped as
    ``log_timestamp`` does; lines without a stamp are returned as they are."""
    m = _STAMP.match(line)
    if m is None:
        return line
    offset = m.group(3).decode().replace("Z", "+00:00")
    moment = datetime.datetime.fromisoformat(m.group(1).decode() + offset)
    nanos = int((m.group(2) or b"0").decode().ljust(9, "0"))
    utc = moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{utc}.{nanos:09d}Z ".encode() + line[m.end():]


RuntimeFactory = Callable[[str], Runtime]
"""Builds the runtime for one node, given the node's name."""
