"""Container runtimes for the embedded cluster's node agents.

``base`` defines the ``Runtime`` interface; ``simulated`` runs nothing (the default, and what
tests and benchmarks use). ``runtime_factory`` maps a ClusterSpec.runtime name to a per-node
constructor; a runtime for real containers registers itself in ``RUNTIME_FACTORIES``.
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
from bayport.cluster.runtime.simulated import SimulatedRuntime

RUNTIME_FACTORIES: dict[str, Callable[[], RuntimeFactory]] = {
    "simulated": lambda: SimulatedRuntime,
}


def runtime_factory(name: str) -> RuntimeFactory:
    """The per-node runtime constructor for ``name``; ValueError for an unknown runtime."""
    try:
        make = RUNTIME_FACTORIES[name]
    except KeyError:
        known = ", ".join(sorted(RUNTIME_FACTORIES))
        raise ValueError(f"unknown cluster runtime {name!r} (known: {known})") from None
    return make()


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
    "runtime_factory",
]
