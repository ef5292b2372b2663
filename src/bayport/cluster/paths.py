"""Host paths built from names in API objects, never outside the directory they belong under.

Volume names, claim names, namespaces and subPaths are user input that ends up joined onto a
host directory (emptyDirs, claim directories, bind-mount sources). Admission
(``cluster.validation``) already refuses names that are not DNS labels; this is the second wall
for anything that got past it: a journal written before the check existed, or a container that
planted a symlink inside its own volume and asks for it as a subPath. ``confined`` takes single
path components only, resolves the result (following symlinks) and refuses it unless it is the
base or below it. The podman runtime and the volume binder build every such path through it.
"""

from __future__ import annotations

from pathlib import Path


class PathEscape(ValueError):
    """A name that would make a path outside its base directory."""


def confined(base: Path, *parts: str) -> Path:
    """``base/part/...`` resolved; PathEscape when a part is not one plain component or the
    result (after symlinks) is not under ``base``."""
    for part in parts:
        if part in ("", ".", "..") or "/" in part or "\0" in part:
            raise PathEscape(f"{part!r} is not a plain file name: it would make a path outside {base}")
    root = base.resolve()
    path = root.joinpath(*parts).resolve()
    if not path.is_relative_to(root):
        raise PathEscape(f"{'/'.join(parts)!r} resolves to {path}, outside {root}")
    return path


def inside(base: Path, path: Path) -> Path:
    """``path`` resolved, when it lies under ``base``; PathEscape otherwise (for paths that other
    components built and handed over, as the node agent's claim directories)."""
    root = base.resolve()
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise PathEscape(f"{path} resolves to {resolved}, outside {root}")
    return resolved
