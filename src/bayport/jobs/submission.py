"""What a job request must be before anything is written: a command, and mounts that can work.

The API checks ``{tenant, cmd, vols}`` here and answers 400 naming the entry
(``vols[1].mount``) instead of letting the cluster accept a Job whose pod can never start.
Whether each claim exists in the tenant's namespace is the conductor's question: only the
cluster knows. ``request_hash`` fingerprints a request so that an Idempotency-Key reused
with another body is told apart from a retry.
"""

from __future__ import annotations

import hashlib
import posixpath
from typing import Any

import orjson

from bayport import errors
from bayport.jobs.naming import is_claim_name

CMD_MAX = 64 * 1024
VOLS_MAX = 64


def check_command(cmd: str) -> str:
    if not cmd.strip():
        raise errors.InvalidInput("cmd: must not be empty", field="cmd")
    if len(cmd) > CMD_MAX:
        raise errors.InvalidInput(f"cmd: must be at most {CMD_MAX} characters", field="cmd")
    return cmd


def check_vols(vols: list[dict[str, str]]) -> list[dict[str, str]]:
    """The mounts with normalised paths; InvalidInput for a bad claim name or a bad/colliding path."""
    if len(vols) > VOLS_MAX:
        raise errors.InvalidInput(f"vols: at most {VOLS_MAX} volumes per job", field="vols")
    out: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    for i, vol in enumerate(vols):
        pvc, mount = vol.get("pvc", ""), vol.get("mount", "")
        if not is_claim_name(pvc):
            raise errors.InvalidInput(f"vols[{i}].pvc: {pvc!r} is not a valid PersistentVolumeClaim name",
                                      field=f"vols[{i}].pvc")
        if not mount.startswith("/"):
            raise errors.InvalidInput(f"vols[{i}].mount: {mount!r} is not an absolute path",
                                      field=f"vols[{i}].mount")
        path = posixpath.normpath(mount)
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        if path == "/":
            raise errors.InvalidInput(f"vols[{i}].mount: a claim cannot be mounted over the container's "
                                      "root '/'", field=f"vols[{i}].mount")
        if path in seen:
            raise errors.InvalidInput(f"vols[{i}].mount: {path} collides with vols[{seen[path]}].mount",
                                      field=f"vols[{i}].mount")
        seen[path] = i
        out.append({"pvc": pvc, "mount": path})
    return out


def check_submission(cmd: str, vols: list[dict[str, str]]) -> tuple[str, list[dict[str, str]]]:
    return check_command(cmd), check_vols(vols)


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
