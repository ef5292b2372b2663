"""The host directories behind a pod's volumes, prepared before its containers are created.

* ``emptyDir``: a fresh directory per pod sandbox under the runtime's state directory (on
  /dev/shm for ``medium: Memory``), shared by the pod's containers and removed with the sandbox.
* ``persistentVolumeClaim``: the claim's directory the volume binder provisioned
  (data_dir/pv/<namespace>/<claim>), handed over by the node agent.
* ``hostPath``: the Bayport host's own filesystem, so only when the cluster was built with the
  ClusterSpec label ``bayport.io/host-path: allow`` — an operator's decision the local driver
  never takes from user-supplied labels.

Anything else (configMap, secret, projected …) has no source in the embedded cluster and is a
``CreateContainerConfigError``. ``runtime.podman`` calls ``prepare`` in a thread (mkdir).

Every directory built from a name is confined (``cluster.paths``): an emptyDir stays under the
sandbox's directory and a claim directory under the cluster's claim root, whatever the pod
says, so a pod that got past admission still cannot mount the host (issue 10).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bayport.cluster.paths import PathEscape, confined, inside
from bayport.cluster.runtime.base import ContainerRuntimeError

HOST_PATH_LABEL = "bayport.io/host-path"
MEMORY_ROOT = Path("/dev/shm")
_ERROR = "CreateContainerConfigError"


def _refuse(message: str) -> ContainerRuntimeError:
    return ContainerRuntimeError(_ERROR, message)


def _host_path(volume: Mapping[str, Any], allowed: bool) -> Path:
    source = volume.get("hostPath") or {}
    name = volume.get("name")
    if not allowed:
        raise _refuse(f"volume {name}: hostPath is refused on this cluster: it would mount the Bayport "
                      "host's own files (an operator enables it with the cluster label "
                      f"{HOST_PATH_LABEL}=allow)")
    path = Path(str(source.get("path", "")))
    if not path.is_absolute():
        raise _refuse(f"volume {name}: hostPath.path must be absolute")
    kind = str(source.get("type") or "")
    if kind == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True)
    elif kind == "FileOrCreate":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    elif kind == "Directory" and not path.is_dir():
        raise _refuse(f"volume {name}: hostPath {path} is not a directory")
    elif kind == "File" and not path.is_file():
        raise _refuse(f"volume {name}: hostPath {path} is not a file")
    elif kind and kind not in ("Directory", "File", "Socket", "CharDevice", "BlockDevice"):
        raise _refuse(f"volume {name}: hostPath.type {kind!r} is not supported")
    elif not kind and not path.exists():
        raise _refuse(f"volume {name}: hostPath {path} does not exist")
    return path


def memory_root(cluster_key: str) -> Path:
    """Where a cluster's ``medium: Memory`` emptyDirs live (tmpfs)."""
    return MEMORY_ROOT / "bayport-podman" / cluster_key


def _confined(name: str, base: Path, *parts: str) -> Path:
    try:
        return confined(base, *parts)
    except PathEscape as exc:
        raise _refuse(f"volume {name!r}: {exc}") from exc


def _claim(name: str, claim: Any, claim_path: Path | None, claim_root: Path | None) -> Path:
    if claim_path is None or claim_root is None:
        raise _refuse(f"volume {name}: claim {claim!r} has no directory on this node (the cluster "
                      "was started without a data_dir)")
    try:
        path = inside(claim_root, claim_path)
    except PathEscape as exc:
        raise _refuse(f"volume {name!r}: claim {claim!r}: {exc}") from exc
    path.mkdir(parents=True, exist_ok=True)
    return path


def prepare(pod: Mapping[str, Any], sandbox: str, state_dir: Path, memory_dir: Path,
            claim_dirs: Mapping[str, Path], *, claim_root: Path | None,
            host_path_allowed: bool) -> dict[str, Path]:
    """volume name → host directory for every volume of the pod; creates emptyDirs.

    ``claim_dirs`` (volume name → directory, from the node agent) must lie under ``claim_root``.
    """
    dirs: dict[str, Path] = {}
    for volume in (pod.get("spec") or {}).get("volumes") or ():
        name = str(volume.get("name", ""))
        if "emptyDir" in volume:
            medium = (volume.get("emptyDir") or {}).get("medium") or ""
            path = _confined(name, memory_dir, sandbox, name) if medium == "Memory" else \
                _confined(name, state_dir, sandbox, "volumes", name)
            path.mkdir(parents=True, exist_ok=True)
            dirs[name] = path
        elif "persistentVolumeClaim" in volume:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            dirs[name] = _claim(name, claim, claim_dirs.get(name), claim_root)
        elif "hostPath" in volume:
            dirs[name] = _host_path(volume, host_path_allowed)
        else:
            kinds = sorted(k for k in volume if k != "name")
            raise _refuse(f"volume {name}: {', '.join(kinds) or 'no source'} is not supported by the "
                          "embedded podman runtime (emptyDir, persistentVolumeClaim and hostPath are)")
    return dirs


def remove(*dirs: Path) -> None:
    """Delete emptyDir trees (claims and host paths are never passed here: not ours to delete)."""
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)
