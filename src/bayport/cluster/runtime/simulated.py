"""The simulated runtime: containers that exist only as records, so a laptop runs 100,000 pods.

Nothing is executed. A sandbox takes ``startup_delay`` seconds to appear (the pod shows
ContainerCreating meanwhile); a started container "runs" for the pod's
``bayport.io/simulated-duration`` annotation (seconds; default 1 s for pods owned by a Job,
forever otherwise) and then exits with ``bayport.io/simulated-exit-code`` (default 0). Exits are
one-shot ``loop.call_later`` timers, never polling tasks. Logs are generated on demand from the
instance's record and say plainly that no process runs. The node agent above applies restart
policy and back-off exactly as it would for a real runtime.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import ClassVar

from bayport.cluster.runtime.base import (
    ContainerConfig,
    ContainerExit,
    ContainerRuntimeError,
    ContainerState,
    ExitListener,
    ImageInfo,
    PodSandboxConfig,
    Runtime,
    SandboxState,
    log_timestamp,
)

DURATION_ANNOTATION = "bayport.io/simulated-duration"
EXIT_CODE_ANNOTATION = "bayport.io/simulated-exit-code"
JOB_POD_DURATION = 1.0
DEFAULT_STARTUP_DELAY = 0.002    # long enough to observe ContainerCreating, short enough for 500 pods/s


def _stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def normalise_image(image: str) -> str:
    """``nginx`` → ``docker.io/library/nginx:latest``, as a CRI runtime reports it."""
    name, sep, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if not sep and ":" not in last:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    return f"{name}@{digest}" if sep else name


def simulated_duration(config: PodSandboxConfig) -> float | None:
    """How long a container of this pod runs: the annotation, else 1 s for Job pods, else forever."""
    raw = config.annotations.get(DURATION_ANNOTATION)
    if raw is not None:
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if value >= 0:
            return value
    return JOB_POD_DURATION if "Job" in config.owner_kinds else None


def simulated_exit_code(config: PodSandboxConfig) -> int:
    try:
        return int(config.annotations.get(EXIT_CODE_ANNOTATION, "0"))
    except ValueError:
        return 0


def _exit_reason(exit_code: int | None) -> str:
    if exit_code is None:
        return ""
    return "Completed" if exit_code == 0 else "Error"


class _Container:
    __slots__ = ("attempt", "container_id", "exit_code", "exit_timer", "finished_at", "followers",
                 "image", "image_id", "init", "name", "sandbox", "started_at")

    def __init__(self, sandbox: _Sandbox, config: ContainerConfig, image: ImageInfo) -> None:
        self.container_id = uuid.uuid4().hex + uuid.uuid4().hex
        self.sandbox = sandbox
        self.name = config.name
        self.attempt = config.attempt
        self.init = config.init
        self.image = image.image
        self.image_id = image.image_id
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.exit_code: int | None = None
        self.exit_timer: asyncio.TimerHandle | None = None
        self.followers: asyncio.Event | None = None     # created only when someone follows logs

    def wake_followers(self) -> None:
        if self.followers is not None:
            self.followers.set()

    def log_lines(self) -> list[tuple[float, str]]:
        """(time written, text) of each line the container has "printed"."""
        s = self.sandbox.config
        lines: list[tuple[float, str]] = []
        if self.started_at is not None:
            lines.append((self.started_at, f"bayport simulated runtime: container {self.name} of pod "
                          f"{s.namespace}/{s.name} (image {self.image}) started at "
                          f"{_stamp(self.started_at)}; no process runs"))
        if self.finished_at is not None:
            lines.append((self.finished_at, f"bayport simulated runtime: container {self.name} exited "
                          f"with code {self.exit_code} at {_stamp(self.finished_at)}"))
        return lines


class _Sandbox:
    __slots__ = ("config", "containers", "sandbox_id", "stopped")

    def __init__(self, config: PodSandboxConfig) -> None:
        self.sandbox_id = uuid.uuid4().hex + uuid.uuid4().hex
        self.config = config
        self.containers: dict[str, _Container] = {}
        self.stopped = False


class SimulatedRuntime(Runtime):
    """A per-node runtime whose containers are timers. ``startup_delay`` is per sandbox."""

    name: ClassVar[str] = "simulated"
    restart_backoff_initial: ClassVar[float] = 0.02
    restart_backoff_max: ClassVar[float] = 1.0

    _image_cache: ClassVar[dict[str, ImageInfo]] = {}

    def __init__(self, node_name: str, *, startup_delay: float = DEFAULT_STARTUP_DELAY) -> None:
        self.node_name = node_name
        self.startup_delay = startup_delay
        self._on_exit: ExitListener | None = None
        self._sandboxes: dict[str, _Sandbox] = {}
        self._containers: dict[str, _Container] = {}
        self._present: set[str] = set()
        self._closed = False

    async def open(self, on_exit: ExitListener) -> None:
        self._on_exit = on_exit

    async def close(self) -> None:
        for sandbox_id in list(self._sandboxes):
            self._drop_sandbox(sandbox_id)
        self._closed = True

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        if self._closed:
            raise ContainerRuntimeError("CreatePodSandboxError",
                                        f"runtime of node {self.node_name} is closed")
        if self.startup_delay > 0:
            await asyncio.sleep(self.startup_delay)
        sandbox = _Sandbox(config)
        self._sandboxes[sandbox.sandbox_id] = sandbox
        return sandbox.sandbox_id

    async def pull_image(self, image: str, pull_policy: str) -> ImageInfo:
        info = self._image_cache.get(image)
        if info is None:
            ref = normalise_image(image)
            if "@" in ref:
                image_id = ref
            else:
                image_id = ref.rsplit(":", 1)[0] + "@sha256:" + hashlib.sha256(ref.encode()).hexdigest()
            info = ImageInfo(image=ref, image_id=image_id, pulled=False)
            self._image_cache[image] = info
        if pull_policy == "Never":
            if image not in self._present:
                raise ContainerRuntimeError("ErrImageNeverPull",
                                     f'Container image "{image}" is not present with pull policy of Never')
            return info
        if pull_policy == "Always" or image not in self._present:
            self._present.add(image)
            return ImageInfo(image=info.image, image_id=info.image_id, pulled=True)
        return info

    async def create_container(self, sandbox_id: str, container: ContainerConfig,
                               image: ImageInfo) -> str:
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None or sandbox.stopped:
            raise ContainerRuntimeError("CreateContainerError", f"pod sandbox {sandbox_id} is not running")
        record = _Container(sandbox, container, image)
        sandbox.containers[record.container_id] = record
        self._containers[record.container_id] = record
        return record.container_id

    async def start_container(self, container_id: str) -> float:
        record = self._containers.get(container_id)
        if record is None or record.sandbox.stopped:
            raise ContainerRuntimeError("RunContainerError", f"container {container_id} does not exist")
        if record.started_at is not None:
            raise ContainerRuntimeError("RunContainerError", f"container {container_id} was already started")
        record.started_at = time.time()
        duration = 0.0 if record.init else simulated_duration(record.sandbox.config)
        if duration is not None:
            loop = asyncio.get_running_loop()
            record.exit_timer = loop.call_later(duration, self._exit, record, self._exit_code(record))
        return record.started_at

    async def remove_container(self, container_id: str) -> None:
        record = self._containers.pop(container_id, None)
        if record is None:
            return
        if record.exit_timer is not None:
            record.exit_timer.cancel()
        record.sandbox.containers.pop(container_id, None)
        record.wake_followers()

    async def stop_pod_sandbox(self, sandbox_id: str, grace_period: float) -> None:
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None or sandbox.stopped:
            return
        sandbox.stopped = True
        now = time.time()
        for record in sandbox.containers.values():
            if record.exit_timer is not None:
                record.exit_timer.cancel()
                record.exit_timer = None
            if record.started_at is not None and record.finished_at is None:
                record.finished_at = now
                record.exit_code = 137
            record.wake_followers()

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self._drop_sandbox(sandbox_id)

    async def list_pod_sandboxes(self) -> list[SandboxState]:
        return [self._sandbox_state(s) for s in self._sandboxes.values()]

    async def container_logs(self, container_id: str, *, follow: bool = False,
                             tail_lines: int | None = None, timestamps: bool = False
                             ) -> AsyncIterator[bytes]:
        record = self._containers.get(container_id)
        if record is None:
            raise ContainerRuntimeError("NotFound", f"container {container_id} does not exist")
        lines = record.log_lines()
        sent = len(lines)
        if tail_lines is not None:
            lines = lines[-tail_lines:] if tail_lines > 0 else []
        def text(chosen: list[tuple[float, str]]) -> bytes:
            return "".join(f"{log_timestamp(ts)} {line}\n" if timestamps else line + "\n"
                           for ts, line in chosen).encode()

        if lines:
            yield text(lines)
        while follow and record.finished_at is None and container_id in self._containers:
            if record.followers is None:
                record.followers = asyncio.Event()
            await record.followers.wait()
            lines = record.log_lines()
            if len(lines) > sent:
                yield text(lines[sent:])
                sent = len(lines)

    # ---------------------------------------------------------------------------------------

    @staticmethod
    def _exit_code(record: _Container) -> int:
        return 0 if record.init else simulated_exit_code(record.sandbox.config)

    def _exit(self, record: _Container, exit_code: int) -> None:
        record.exit_timer = None
        if record.sandbox.stopped or record.container_id not in self._containers:
            return
        record.finished_at = time.time()
        record.exit_code = exit_code
        record.wake_followers()
        if self._on_exit is not None and record.started_at is not None:
            self._on_exit(ContainerExit(
                sandbox_id=record.sandbox.sandbox_id, container_id=record.container_id,
                container_name=record.name, exit_code=exit_code,
                reason=_exit_reason(exit_code),
                started_at=record.started_at, finished_at=record.finished_at))

    def _drop_sandbox(self, sandbox_id: str) -> None:
        sandbox = self._sandboxes.pop(sandbox_id, None)
        if sandbox is None:
            return
        sandbox.stopped = True
        for container_id, record in sandbox.containers.items():
            if record.exit_timer is not None:
                record.exit_timer.cancel()
            self._containers.pop(container_id, None)
            record.wake_followers()
        sandbox.containers.clear()

    @staticmethod
    def _sandbox_state(sandbox: _Sandbox) -> SandboxState:
        containers = tuple(
            ContainerState(container_id=c.container_id, name=c.name, attempt=c.attempt, image=c.image,
                           image_id=c.image_id, init=c.init,
                           running=c.started_at is not None and c.finished_at is None,
                           started_at=c.started_at, finished_at=c.finished_at, exit_code=c.exit_code,
                           reason=_exit_reason(c.exit_code))
            for c in sandbox.containers.values())
        cfg = sandbox.config
        return SandboxState(sandbox_id=sandbox.sandbox_id, uid=cfg.uid, namespace=cfg.namespace,
                            name=cfg.name, pod_ip=cfg.pod_ip, ready=not sandbox.stopped,
                            containers=containers)
