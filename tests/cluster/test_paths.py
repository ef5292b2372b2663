"""Names from API objects never leave their base directory on the host, whatever admission said:
the runtime and the volume binder build every path through ``cluster.paths.confined``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bayport.cluster.controllers.volumes import claim_dir
from bayport.cluster.paths import PathEscape, confined
from bayport.cluster.runtime import podman_volumes
from bayport.cluster.runtime.base import ContainerRuntimeError
from bayport.cluster.runtime.podman_spec import mount_args


@pytest.mark.parametrize("parts", [("/",), ("..",), ("../../../etc",), ("/etc",), ("a/../../b",),
                                   ("",), (".",), ("a\0b",), ("ok", ".."), ("ok", "/etc")])
def test_escaping_names_are_refused(tmp_path: Path, parts: tuple[str, ...]) -> None:
    with pytest.raises(PathEscape):
        confined(tmp_path / "base", *parts)


def test_a_symlink_pointing_out_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    os.symlink("/", base / "link")
    with pytest.raises(PathEscape):
        confined(base, "link")
    with pytest.raises(PathEscape):
        confined(base, "link", "etc")
    assert confined(base, "plain", "deeper") == (base / "plain" / "deeper").resolve()


def _pod(*volumes: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"volumes": list(volumes)}}


@pytest.mark.parametrize("volume", [
    {"name": "/", "emptyDir": {}},
    {"name": "../../../etc", "emptyDir": {}},
    {"name": "/etc", "emptyDir": {"medium": "Memory"}},
])
def test_runtime_refuses_empty_dirs_named_as_paths(tmp_path: Path, volume: dict[str, Any]) -> None:
    """A pod that bypassed admission (an old journal, a bug) still gets no host directory."""
    with pytest.raises(ContainerRuntimeError) as refused:
        podman_volumes.prepare(_pod(volume), "sandbox-1", tmp_path / "state", tmp_path / "shm", {},
                               claim_root=tmp_path / "pv", host_path_allowed=False)
    assert refused.value.reason == "CreateContainerConfigError"
    assert "outside" in refused.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["state"], ["shm"])


def test_runtime_refuses_claim_directories_outside_the_claim_root(tmp_path: Path) -> None:
    volume = {"name": "data", "persistentVolumeClaim": {"claimName": "x"}}
    with pytest.raises(ContainerRuntimeError) as refused:
        podman_volumes.prepare(_pod(volume), "s", tmp_path / "state", tmp_path / "shm",
                               {"data": tmp_path / "pv" / "default" / ".." / ".." / ".." / "etc"},
                               claim_root=tmp_path / "pv", host_path_allowed=False)
    assert "outside" in refused.value.message
    good = podman_volumes.prepare(_pod(volume), "s", tmp_path / "state", tmp_path / "shm",
                                  {"data": tmp_path / "pv" / "default" / "x"},
                                  claim_root=tmp_path / "pv", host_path_allowed=False)
    assert good == {"data": (tmp_path / "pv" / "default" / "x").resolve()}


def test_sub_path_through_a_planted_symlink_is_refused(tmp_path: Path) -> None:
    """A container links a name in its volume to / ; a later mount of that subPath must not follow."""
    volume = tmp_path / "vol"
    volume.mkdir()
    os.symlink("/", volume / "escape")
    container = {"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/x", "subPath": "escape"}]}
    with pytest.raises(ContainerRuntimeError) as refused:
        mount_args(container, {"v": volume})
    assert "outside" in refused.value.message
    inside = {"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/x", "subPath": "a/b"}]}
    assert mount_args(inside, {"v": volume}) == [
        "--mount", f"type=bind,source={(volume / 'a' / 'b').resolve()},destination=/x"]


def test_claim_dir_refuses_names_that_are_paths(tmp_path: Path) -> None:
    assert claim_dir(tmp_path, "default", "data") == (tmp_path / "pv" / "default" / "data").resolve()
    for namespace, claim in (("default", "../../.."), ("..", "x"), ("default", "/etc")):
        with pytest.raises(PathEscape):
            claim_dir(tmp_path, namespace, claim)
