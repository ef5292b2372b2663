"""Container runtimes for the embedded cluster's node agents.

``base`` defines the ``Runtime`` interface; ``simulated`` runs nothing (the default, and what
tests and benchmarks use). ``make_runtime_factory(spec)`` picks the per-node constructor named by
ClusterSpec.runtime from ``RUNTIME_FACTORIES``; a runtime for real containers registers an entry
there that receives the whole ClusterSpec (cluster uid for labelling its containers, data_dir …)
and returns a ``node name → Runtime`` constructor.
"""

from __future__ import annotations

from collections.abc import Callable

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
)
from bayport.cluster.runtime.podman import podman_factory
from bayport.cluster.runtime.simulated import SimulatedRuntime
from bayport.cluster.spec import ClusterSpec

RUNTIME_FACTORIES: dict[str, Callable[[ClusterSpec], RuntimeFactory]] = {
    "simulated": lambda spec: SimulatedRuntime,
    "podman": podman_factory,
}


def make_runtime_factory(spec: ClusterSpec) -> RuntimeFactory:
    """The per-node runtime constructor for ``spec.runtime``; ValueError for an unknown runtime."""
    try:
        make = RUNTIME_FACTORIES[spec.runtime]
    except KeyError:
        known = ", ".join(sorted(RUNTIME_FACTORIES))
        raise ValueError(f"unknown cluster runtime {spec.runtime!r} (known: {known})") from None
    return make(spec)


__all__ = [
    "RUNTIME_FACTORIES",
    "ContainerConfig",
    "ContainerExit",
    "ContainerRuntimeError",
    "ContainerState",
    "ExitListener",
    "ImageInfo",
    "PodSandboxConfig",
    "Runtime",
    "RuntimeFactory",
    "SandboxState",
    "SimulatedRuntime",
    "make_runtime_factory",
]
