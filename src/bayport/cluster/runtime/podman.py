"""The podman runtime: every pod of an embedded cluster runs as real containers on this machine.

A pod sandbox is a network namespace the runtime creates (``podman_net``: bound by bayport-cni
or the standard bridge plugin) plus a podman pod without an infra container; each Kubernetes
container becomes ``podman create --pod <sandbox> --network ns:<netns>`` (arguments from
``podman_spec``, volumes from ``podman_volumes``, images by ``podman_images``) and ``podman
start`` (which initialises it: a separate ``podman init`` was one more process and one more turn
on podman's locks per pod, and bought nothing once bayport-cni stopped being the slow step).
Sandbox setup runs concurrently with image and container creation: ``create_container`` waits
only for the podman pod, ``start_container`` for the network. Every call is a podman CLI
process (``podman_cli``); pod create and start can go over podman's REST API instead
(``podman_api``, off by default: its docstring has the measurements). Exits arrive from one
``podman events`` process per node (``podman_events``).

Every podman object is named ``bp-<cluster uid[:8]>-…`` and labelled ``bayport.cluster=<uid>``,
``bayport.node=<uid>/<node>``, ``bayport.pod-uid=<uid>`` and with its owner (``ownership``: the
server's data dir and the bay, read by ``bayport admin leftovers``), so listing (adoption after an
agent restart), clean-up and concurrent clusters only ever see their own (``podman_cluster`` holds the
names, labels and the clean-up shared by a cluster's nodes). The node agent
(``controllers.node_agent``) drives all of this through the ``Runtime`` interface in ``base``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Coroutine, Mapping
from pathlib import Path
from typing import Any, ClassVar

from bayport.cluster.runtime import podman_api, podman_volumes
from bayport.cluster.runtime.base import (
    ContainerConfig,
    ContainerExit,
    ContainerRuntimeError,
    ContainerState,
    ExitListener,
    ImageInfo,
    PodSandboxConfig,
    Runtime,
    RuntimeFactory,
    SandboxState,
    utc_log_line,
)
from bayport.cluster.runtime.podman_cli import PODMAN, CommandError, podman, podman_id, podman_json
from bayport.cluster.runtime.podman_cluster import (
    LABEL_ATTEMPT,
    LABEL_CONTAINER,
    LABEL_HOST_NETWORK,
    LABEL_IMAGE,
    LABEL_IMAGE_ID,
    LABEL_INIT,
    LABEL_NODE,
    LABEL_POD_IP,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    LABEL_VOLUMES,
    PodmanCluster,
    slug,
)
from bayport.cluster.runtime.podman_events import ExitWatcher, parse_time
from bayport.cluster.runtime.podman_images import ImageStore
from bayport.cluster.runtime.podman_net import (
    PodIdentity,
    create_netns,
    delete_netns,
    netns_path,
)
from bayport.cluster.runtime.podman_spec import create_args
from bayport.cluster.spec import ClusterSpec

log = logging.getLogger(__name__)

PARALLEL_COMMANDS = 8        # podman serialises on its own locks; more processes only add CPU contention
UNCLAIMED_EXITS = 512


def podman_factory(spec: ClusterSpec) -> RuntimeFactory:
    cluster = PodmanCluster(spec)
    return lambda node_name: PodmanRuntime(node_name, cluster)


class _Sandbox:
    __slots__ = ("containers", "host_network", "ident", "name", "net_attached", "net_task", "netns",
                 "pod", "pod_task", "stopped", "volumes")

    def __init__(self, name: str, ident: PodIdentity, pod: Mapping[str, Any], host_network: bool) -> None:
        self.name = name
        self.ident = ident
        self.pod = pod
        self.host_network = host_network
        self.netns: str | None = None
        self.volumes: dict[str, Path] = {}
        self.pod_task: asyncio.Task[None] | None = None
        self.net_task: asyncio.Task[None] | None = None
        self.net_attached = False
        self.stopped = False
        self.containers: set[str] = set()


class _Container:
    __slots__ = ("attempt", "container_id", "failed", "followers", "image", "image_id", "init", "name",
                 "pending_exit", "reported", "sandbox", "started_at", "starting")

    def __init__(self, container_id: str, sandbox: _Sandbox, name: str, attempt: int, init: bool,
                 image: str, image_id: str) -> None:
        self.container_id = container_id
        self.sandbox = sandbox
        self.name = name
        self.attempt = attempt
        self.init = init
        self.image = image
        self.image_id = image_id
        self.started_at: float | None = None
        self.starting = False
        self.failed = False
        self.reported = False
        self.pending_exit: tuple[int, float] | None = None
        self.followers: set[asyncio.subprocess.Process] = set()


def _restamped(chunk: bytes) -> bytes:
    return b"\n".join(utc_log_line(line) for line in chunk.split(b"\n"))


def _quiet(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class PodmanRuntime(Runtime):
    """One node's podman runtime. See the module docstring and ``base`` for the contract."""

    name: ClassVar[str] = "podman"
    restart_backoff_initial: ClassVar[float] = 1.0    # kubelet's 10 s is long for an embedded cluster
    restart_backoff_max: ClassVar[float] = 60.0

    def __init__(self, node_name: str, cluster: PodmanCluster) -> None:
        self.node_name = node_name
        self.cluster = cluster
        self.node_key = f"{cluster.uid}/{node_name}"
        self.images = ImageStore()
        self._on_exit: ExitListener | None = None
        self._watcher = ExitWatcher(self.node_key, self._on_died)
        self._limit = asyncio.Semaphore(PARALLEL_COMMANDS)
        self._sandboxes: dict[str, _Sandbox] = {}
        self._containers: dict[str, _Container] = {}
        self._unclaimed: dict[str, tuple[int, float]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._opened = False
        self._closed = False

    # --- lifecycle ------------------------------------------------------------------------------

    async def open(self, on_exit: ExitListener) -> None:
        self._on_exit = on_exit
        if not self._opened:
            self._opened = True
            self.cluster.open_runtimes += 1
            await self.cluster.network.claim_pool()
            self._watcher.start(since=time.time() - 1.0)

    async def close(self) -> None:
        if not await self._let_go():
            return
        try:
            listed = await podman_json("pod", "ps", "--filter", f"label={LABEL_NODE}={self.node_key}",
                                       "--format", "json") or []
        except (CommandError, ValueError):
            listed = []
        names = sorted({*self._sandboxes, *(p["Name"] for p in listed)})
        if names:
            with contextlib.suppress(CommandError):
                await podman("pod", "rm", "-f", "-t", "0", *names)
        for name in names:
            with contextlib.suppress(ContainerRuntimeError):
                await delete_netns(name)
            await self._remove_volumes(name)
        self._sandboxes.clear()
        self._containers.clear()
        if self._unopen():
            await self.cluster.sweep()

    async def detach(self) -> None:
        """Shutdown of the hosting process: the containers, netns and bridge stay for adoption."""
        if await self._let_go():
            self._unopen()

    async def _let_go(self) -> bool:
        """Stop watching and following, once; False when ``close``/``detach`` already ran."""
        if self._closed:
            return False
        self._closed = True
        await self.abandon()
        for c in self._containers.values():
            self._kill_followers(c)
        return True

    def _unopen(self) -> bool:
        """Give back this runtime's share of the cluster; True when it was the last one open."""
        if not self._opened:
            return False
        self._opened = False
        self.cluster.open_runtimes -= 1
        return self.cluster.open_runtimes <= 0

    async def abandon(self) -> None:
        """Stop watching and forget in-flight work but leave every container running — what a
        crashed agent leaves behind; ``close`` calls it first, tests call it to simulate a crash."""
        await self._watcher.close()
        for report in list(self._tasks):
            report.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for sandbox in self._sandboxes.values():
            for setup in (sandbox.pod_task, sandbox.net_task):
                if setup is not None and not setup.done():
                    setup.cancel()

    # --- sandboxes -------------------------------------------------------------------------------

    def _sandbox_labels(self, ident: PodIdentity, host_network: bool,
                        volumes: Mapping[str, Path]) -> dict[str, str]:
        return {**self.cluster.labels(), LABEL_NODE: self.node_key, LABEL_POD_UID: ident.uid,
                LABEL_POD_NAME: ident.name, LABEL_POD_NAMESPACE: ident.namespace,
                LABEL_POD_IP: ident.ip or "", LABEL_HOST_NETWORK: "true" if host_network else "false",
                LABEL_VOLUMES: json.dumps({k: str(v) for k, v in volumes.items()}, separators=(",", ":"))}

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        if self._closed:
            raise ContainerRuntimeError("CreatePodSandboxError",
                                        f"runtime of node {self.node_name} is closed")
        name = f"{self.cluster.prefix}-{slug(config.name, 40)}-{config.uid[:8]}-{secrets.token_hex(2)}"
        ident = PodIdentity(sandbox=name, namespace=config.namespace, name=config.name, uid=config.uid,
                            ip=None if config.host_network else config.pod_ip)
        sandbox = _Sandbox(name, ident, config.pod, config.host_network)
        self._sandboxes[name] = sandbox
        try:
            sandbox.volumes = await asyncio.to_thread(
                podman_volumes.prepare, config.pod, name, self.cluster.state_dir, self.cluster.memory_dir,
                config.volume_dirs, claim_root=self.cluster.claim_root,
                host_path_allowed=self.cluster.host_path_allowed)
            if not config.host_network:
                sandbox.netns = await create_netns(name, self.cluster.owner)
        except BaseException:
            self._sandboxes.pop(name, None)
            await self._remove_volumes(name)
            raise
        sandbox.pod_task = self._background(self._create_pod(sandbox))
        if sandbox.netns is not None:
            sandbox.net_task = self._background(self._attach(sandbox))
        return name

    async def _create_pod(self, sandbox: _Sandbox) -> None:
        labels = self._sandbox_labels(sandbox.ident, sandbox.host_network, sandbox.volumes)
        async with self._limit:
            if podman_api.enabled():
                with contextlib.suppress(podman_api.Unavailable):
                    await podman_api.pod_create(sandbox.name, labels)
                    return
            await podman_id("pod", "create", "--infra=false", "--name", sandbox.name,
                            *(arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")))

    async def _attach(self, sandbox: _Sandbox) -> None:
        assert sandbox.netns is not None
        await self.cluster.network.attach(sandbox.ident, sandbox.netns)
        sandbox.net_attached = True

    async def _remove_volumes(self, sandbox: str) -> None:
        await asyncio.to_thread(podman_volumes.remove, self.cluster.state_dir / sandbox,
                                self.cluster.memory_dir / sandbox)

    def _background(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        task.add_done_callback(_quiet)
        return task

    @staticmethod
    async def _setup_done(task: asyncio.Task[None] | None, what: str) -> None:
        if task is None:
            return
        try:
            await asyncio.shield(task)
        except ContainerRuntimeError:
            raise
        except CommandError as exc:
            raise ContainerRuntimeError("CreatePodSandboxError", f"{what}: {exc.message}") from exc

    async def stop_pod_sandbox(self, sandbox_id: str, grace_period: float) -> None:
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None or sandbox.stopped:
            return
        sandbox.stopped = True
        # let an in-flight pod create / CNI ADD finish rather than cancel it: a podman pod created
        # just after our ``pod rm`` would outlive the pod until the cluster closes
        setup = [t for t in (sandbox.pod_task, sandbox.net_task) if t is not None]
        if setup:
            await asyncio.wait(setup)
        grace = max(0, int(grace_period + 0.999))
        try:
            async with self._limit:
                await podman("pod", "stop", "-t", str(grace), sandbox_id, timeout=grace + 60)
        except CommandError as exc:
            if not exc.not_found:
                log.warning("%s: stopping pod %s: %s", self.node_name, sandbox_id, exc.message)
        await self._teardown_network(sandbox)

    async def _teardown_network(self, sandbox: _Sandbox) -> None:
        if sandbox.netns is None:
            return
        netns, sandbox.netns = sandbox.netns, None
        if sandbox.net_attached:
            sandbox.net_attached = False
            try:
                await self.cluster.network.detach(sandbox.ident, netns)
            except ContainerRuntimeError as exc:
                log.warning("%s: CNI DEL of %s: %s", self.node_name, sandbox.name, exc.message)
        await delete_netns(sandbox.name)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None and not sandbox_id.startswith(self.cluster.prefix + "-"):
            return
        if sandbox is not None:
            await self.stop_pod_sandbox(sandbox_id, 0)
            for container_id in sandbox.containers:
                container = self._containers.pop(container_id, None)
                if container is not None:
                    self._kill_followers(container)
        try:
            async with self._limit:
                await podman("pod", "rm", "-f", "-t", "0", sandbox_id)
        except CommandError as exc:
            if not exc.not_found:
                raise ContainerRuntimeError("KillPodSandboxError", exc.message) from exc
        await delete_netns(sandbox_id)
        await self._remove_volumes(sandbox_id)
        self._sandboxes.pop(sandbox_id, None)

    # --- images and containers ------------------------------------------------------------------

    async def pull_image(self, image: str, pull_policy: str) -> ImageInfo:
        return await self.images.ensure(image, pull_policy)

    async def create_container(self, sandbox_id: str, container: ContainerConfig, image: ImageInfo) -> str:
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None or sandbox.stopped:
            raise ContainerRuntimeError("CreateContainerError", f"pod sandbox {sandbox_id} is not running")
        await self._setup_done(sandbox.pod_task, "creating the podman pod")
        options, command = create_args(container.spec, pod=sandbox.pod, pod_ip=sandbox.ident.ip,
                                       node_name=self.node_name, volumes=sandbox.volumes)
        labels = {**self.cluster.labels(), LABEL_NODE: self.node_key,
                  LABEL_POD_UID: sandbox.ident.uid, LABEL_CONTAINER: container.name,
                  LABEL_ATTEMPT: str(container.attempt), LABEL_INIT: "true" if container.init else "false",
                  LABEL_IMAGE: image.image, LABEL_IMAGE_ID: image.image_id}
        network = ["--network", "host"] if sandbox.netns is None else \
            ["--network", f"ns:{sandbox.netns}", "--hostname", sandbox.ident.name[:63]]
        argv = ["create", "--pod", sandbox_id, "--name", f"{sandbox_id}-{slug(container.name, 40)}-"
                f"{container.attempt}", *network, "--log-driver", "k8s-file", "--pull", "never",
                *(arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")),
                *options, image.image, *command]
        try:
            async with self._limit:
                container_id = await podman_id(*argv)
        except CommandError as exc:
            self.images.forget(container.image)
            raise ContainerRuntimeError("CreateContainerError", exc.message) from exc
        record = _Container(container_id, sandbox, container.name, container.attempt, container.init,
                            image.image, image.image_id)
        self._containers[container_id] = record
        sandbox.containers.add(container_id)
        return container_id

    async def start_container(self, container_id: str) -> float:
        record = self._containers.get(container_id)
        if record is None or record.sandbox.stopped:
            raise ContainerRuntimeError("RunContainerError", f"container {container_id} does not exist")
        await self._setup_done(record.sandbox.net_task, "setting up the pod network")
        record.starting = True
        try:
            async with self._limit:
                await _start(container_id)
        except CommandError as exc:
            record.failed = True
            record.pending_exit = None
            raise ContainerRuntimeError("RunContainerError", exc.message) from exc
        finally:
            record.starting = False
        record.started_at = time.time()
        if record.pending_exit is not None:
            code, when = record.pending_exit
            record.pending_exit = None
            self._died(record, code, when)
        return record.started_at

    async def remove_container(self, container_id: str) -> None:
        record = self._containers.pop(container_id, None)
        if record is None:
            return
        record.sandbox.containers.discard(container_id)
        self._kill_followers(record)
        try:
            async with self._limit:
                await podman("rm", "-f", "-t", "0", container_id)
        except CommandError as exc:
            if not exc.not_found:
                raise ContainerRuntimeError("RemoveContainerError", exc.message) from exc

    # --- exits -------------------------------------------------------------------------------------

    def _on_died(self, container_id: str, exit_code: int, when: float) -> None:
        record = self._containers.get(container_id)
        if record is None:
            self._unclaimed[container_id] = (exit_code, when)   # listing may claim it (adoption)
            while len(self._unclaimed) > UNCLAIMED_EXITS:
                self._unclaimed.pop(next(iter(self._unclaimed)))
            return
        self._died(record, exit_code, when)

    def _died(self, record: _Container, exit_code: int, when: float) -> None:
        if record.reported or record.failed or record.sandbox.stopped:
            return
        if record.starting:
            record.pending_exit = (exit_code, when)
            return
        if record.started_at is None:
            return
        record.reported = True
        task = asyncio.create_task(self._report(record, exit_code, when))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report(self, record: _Container, exit_code: int, when: float) -> None:
        reason = "Completed" if exit_code == 0 else "Error"
        started, finished = record.started_at or when, when
        try:
            found = await podman_json("container", "inspect", "--format", "json", record.container_id)
            state = found[0]["State"]
            exit_code = int(state.get("ExitCode", exit_code))
            started = parse_time(state.get("StartedAt")) or started
            finished = parse_time(state.get("FinishedAt")) or finished
            if state.get("OOMKilled"):
                reason = "OOMKilled"
            elif exit_code == 0:
                reason = "Completed"
        except (CommandError, ValueError, KeyError, IndexError, TypeError):
            pass
        if record.sandbox.stopped or self._on_exit is None or record.container_id not in self._containers:
            return
        self._on_exit(ContainerExit(sandbox_id=record.sandbox.name, container_id=record.container_id,
                                    container_name=record.name, exit_code=exit_code, reason=reason,
                                    started_at=started, finished_at=finished))

    # --- adoption -------------------------------------------------------------------------------

    async def list_pod_sandboxes(self) -> list[SandboxState]:
        node = f"label={LABEL_NODE}={self.node_key}"
        try:
            pods = await podman_json("pod", "ps", "--filter", node, "--format", "json") or []
            containers = await podman_json("ps", "-a", "--filter", node, "--format", "json") or []
        except (CommandError, ValueError) as exc:
            raise ContainerRuntimeError("ListPodSandboxError", str(exc)) from exc
        by_pod: dict[str, list[dict[str, Any]]] = {}
        for c in containers:
            by_pod.setdefault(str(c.get("Pod") or ""), []).append(c)
        states = []
        for pod in pods:
            sandbox = self._adopt_sandbox(pod)
            listed = sorted(by_pod.get(str(pod.get("Id")), ()),
                            key=lambda c: int((c.get("Labels") or {}).get(LABEL_ATTEMPT) or 0))
            kept = [self._adopt_container(sandbox, c) for c in listed]
            ready = not sandbox.stopped and (sandbox.host_network or sandbox.netns is not None)
            states.append(SandboxState(sandbox_id=sandbox.name, uid=sandbox.ident.uid,
                                       namespace=sandbox.ident.namespace, name=sandbox.ident.name,
                                       pod_ip=sandbox.ident.ip, ready=ready,
                                       containers=tuple(s for s in kept if s is not None)))
        return states

    def _adopt_sandbox(self, pod: Mapping[str, Any]) -> _Sandbox:
        name = str(pod["Name"])
        known = self._sandboxes.get(name)
        if known is not None:
            return known
        labels = pod.get("Labels") or {}
        ident = PodIdentity(sandbox=name, namespace=labels.get(LABEL_POD_NAMESPACE, ""),
                            name=labels.get(LABEL_POD_NAME, ""), uid=labels.get(LABEL_POD_UID, ""),
                            ip=labels.get(LABEL_POD_IP) or None)
        host_network = labels.get(LABEL_HOST_NETWORK) == "true"
        meta = {"name": ident.name, "namespace": ident.namespace, "uid": ident.uid}
        sandbox = _Sandbox(name, ident, {"metadata": meta}, host_network)
        try:
            sandbox.volumes = {k: Path(v) for k, v in json.loads(labels.get(LABEL_VOLUMES) or "{}").items()}
        except (ValueError, AttributeError):
            sandbox.volumes = {}
        if not host_network and os.path.exists(netns_path(name)):
            sandbox.netns = netns_path(name)
            sandbox.net_attached = True
        sandbox.stopped = not host_network and sandbox.netns is None
        self._sandboxes[name] = sandbox
        return sandbox

    def _adopt_container(self, sandbox: _Sandbox, listed: Mapping[str, Any]) -> ContainerState | None:
        labels = listed.get("Labels") or {}
        started = _unix(listed.get("StartedAt"))
        if started is None:
            return None                      # never started: the pod is half-made and starts over
        container_id = str(listed["Id"])
        running = str(listed.get("State", "")).lower() == "running"
        record = self._containers.get(container_id)
        if record is None:
            record = _Container(container_id, sandbox, labels.get(LABEL_CONTAINER, ""),
                                int(labels.get(LABEL_ATTEMPT) or 0), labels.get(LABEL_INIT) == "true",
                                labels.get(LABEL_IMAGE, str(listed.get("Image", ""))),
                                labels.get(LABEL_IMAGE_ID, ""))
            record.started_at = started
            record.reported = not running
            self._containers[container_id] = record
            sandbox.containers.add(container_id)
            unclaimed = self._unclaimed.pop(container_id, None)
            if unclaimed is not None and running:
                self._died(record, *unclaimed)
        exit_code = None if running else int(listed.get("ExitCode") or 0)
        return ContainerState(container_id=container_id, name=record.name, attempt=record.attempt,
                              image=record.image, image_id=record.image_id, init=record.init,
                              running=running, started_at=started,
                              finished_at=None if running else _unix(listed.get("ExitedAt")),
                              exit_code=exit_code,
                              reason="" if running else ("Completed" if exit_code == 0 else "Error"))

    # --- logs -------------------------------------------------------------------------------------

    async def container_logs(self, container_id: str, *, follow: bool = False,
                             tail_lines: int | None = None, timestamps: bool = False
                             ) -> AsyncIterator[bytes]:
        record = self._containers.get(container_id)
        if record is None:
            raise ContainerRuntimeError("NotFound", f"container {container_id} does not exist")
        if tail_lines is not None and tail_lines <= 0:
            return
        argv = [PODMAN, "logs", *(["--follow"] if follow else []), *(["--timestamps"] if timestamps else []),
                *(["--tail", str(tail_lines)] if tail_lines is not None else []), container_id]
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
        record.followers.add(proc)
        try:
            assert proc.stdout is not None
            pending = b""
            while chunk := await proc.stdout.read(1 << 16):
                pending += chunk
                cut = pending.rfind(b"\n")
                if cut >= 0:
                    yield _restamped(pending[:cut + 1]) if timestamps else pending[:cut + 1]
                    pending = pending[cut + 1:]
            if pending:
                yield _restamped(pending) if timestamps else pending
        finally:
            record.followers.discard(proc)
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await proc.wait()

    @staticmethod
    def _kill_followers(record: _Container) -> None:
        for proc in record.followers:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()


async def _start(container_id: str) -> None:
    """``podman start`` over the libpod API, by CLI when the service is not available."""
    if podman_api.enabled():
        with contextlib.suppress(podman_api.Unavailable):
            await podman_api.start(container_id)
            return
    await podman("start", container_id)


def _unix(value: object) -> float | None:
    """podman ps times: epoch seconds, or a negative number for 'never'."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None
