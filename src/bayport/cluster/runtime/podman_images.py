"""Images for the podman runtime: imagePullPolicy applied with ``podman image inspect`` / ``pull``.

``Never`` needs the image present (``ErrImageNeverPull``), ``IfNotPresent`` pulls only when it is
missing, ``Always`` pulls every time. A failed pull is ``ErrImagePull``; a pull of the same image
that fails again (the node agent retries with back-off) is ``ImagePullBackOff`` — the pair kubelet
shows. Short names resolve as podman resolves them, so ``busybox:1.28.4`` finds a local
``localhost/busybox:1.28.4``. Positive inspections are cached briefly: starting 50 pods of one
image should not cost 50 inspections.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from bayport.cluster.runtime.base import ContainerRuntimeError, ImageInfo
from bayport.cluster.runtime.podman_cli import CommandError, podman, podman_json

CACHE_SECONDS = 30.0
PULL_TIMEOUT = 300.0


def _repo(reference: str) -> str:
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


def _tagged(reference: str) -> str:
    name = reference.split("@", 1)[0]
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"


def describe(reference: str, inspected: Mapping[str, Any]) -> ImageInfo:
    """The ImageInfo of an inspected image: the tag matching ``reference`` and its digest."""
    tags = [str(t) for t in inspected.get("RepoTags") or () if isinstance(t, str)]
    digests = [str(d) for d in inspected.get("RepoDigests") or () if isinstance(d, str)]
    wanted = _tagged(reference)
    shown = next((t for t in tags if t == wanted or t.endswith("/" + wanted)), tags[0] if tags else reference)
    repo = _repo(shown)
    image_id = next((d for d in digests if d.startswith(repo + "@")), digests[0] if digests else "")
    if not image_id:
        image_id = "sha256:" + str(inspected.get("Id") or "")
    return ImageInfo(image=shown, image_id=image_id, pulled=False)


class ImageStore:
    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, ImageInfo]] = {}
        self._failures: dict[str, int] = {}

    def forget(self, image: str) -> None:
        self._cache.pop(image, None)

    async def inspect(self, image: str) -> ImageInfo | None:
        cached = self._cache.get(image)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            found = await podman_json("image", "inspect", "--format", "json", image, timeout=60)
        except CommandError as exc:
            if exc.not_found or "unknown" in exc.message.lower():
                return None
            raise ContainerRuntimeError("ErrImageInspect",
                                        f'inspecting image "{image}": {exc.message}') from exc
        if not found:
            return None
        info = describe(image, found[0])
        self._cache[image] = (time.monotonic() + CACHE_SECONDS, info)
        return info

    async def ensure(self, image: str, policy: str) -> ImageInfo:
        present = None if policy == "Always" else await self.inspect(image)
        if present is not None:
            return present
        if policy == "Never":
            raise ContainerRuntimeError("ErrImageNeverPull",
                                        f'Container image "{image}" is not present with pull policy of Never')
        try:
            await podman("pull", "--quiet", image, timeout=PULL_TIMEOUT)
        except CommandError as exc:
            failures = self._failures.get(image, 0) + 1
            self._failures[image] = failures
            if failures > 1:
                raise ContainerRuntimeError("ImagePullBackOff",
                                            f'Back-off pulling image "{image}": {exc.message}') from exc
            raise ContainerRuntimeError("ErrImagePull",
                                        f'Failed to pull image "{image}": {exc.message}') from exc
        self._failures.pop(image, None)
        self.forget(image)
        info = await self.inspect(image)
        if info is None:
            raise ContainerRuntimeError("ErrImagePull", f'image "{image}" is missing right after its pull')
        return ImageInfo(image=info.image, image_id=info.image_id, pulled=True)
