"""Who owns a host resource an embedded bay made: the data dir's owner id and the bay's uuid.

A server's data dir gets a stable owner id once (``<data_dir>/owner-id``, a uuid), so a data dir
deleted and made again at the same path is a different owner. Everything the podman runtime
creates on the host carries ``Owner``: podman pods and containers as labels (``LABEL_*``), the
bay's bridge as its kernel interface alias (IFLA_IFALIAS, ``alias``), and what the kernel cannot
label — network namespaces and the pod pool's route — as a small record in the host ledger
(``/run/bayport``, a tmpfs that lives exactly as long as those kernel objects). The ledger also
maps owner ids to their data dirs, for resources (bridges) that carry only the id.
``runtime.leftovers`` reads all of it to find what belongs to owners that no longer exist.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

LABEL_OWNER = "bayport.io/owner"
LABEL_OWNER_DIR = "bayport.io/owner-dir"
LABEL_BAY = "bayport.io/bay"
OWNER_FILE = "owner-id"
ALIAS_PREFIX = "bayport"
ALIAS_MAX = 255                         # IFALIASZ - 1 on Linux
LEDGER_DIR = Path("/run/bayport")       # module attribute (tests point it elsewhere)


@dataclass(frozen=True, slots=True)
class Owner:
    """The data dir (by its id and path) and the bay a host resource belongs to."""

    id: str
    data_dir: Path
    bay: str

    def labels(self) -> dict[str, str]:
        return {LABEL_OWNER: self.id, LABEL_OWNER_DIR: str(self.data_dir), LABEL_BAY: self.bay}

    def label_args(self) -> list[str]:
        return [arg for key, value in self.labels().items() for arg in ("--label", f"{key}={value}")]

    def alias(self) -> str:
        """A bridge's alias: the ids only (its path would not always fit in 255 bytes; the
        ledger's ``owners`` maps the id to the path)."""
        return f"{ALIAS_PREFIX} owner={self.id} bay={self.bay}"


def parse_alias(text: str) -> tuple[str, str] | None:
    """(owner id, bay uuid) from an alias ``Owner.alias`` wrote, else None."""
    words = text.strip().split()
    if not words or words[0] != ALIAS_PREFIX:
        return None
    fields = dict(w.split("=", 1) for w in words[1:] if "=" in w)
    if "owner" not in fields or "bay" not in fields:
        return None
    return fields["owner"], fields["bay"]


def owner_id(data_dir: Path) -> str:
    """The data dir's owner id, made on first use. Linked into place from a private temporary
    file, so two processes sharing the data dir agree on the first one written."""
    path = data_dir / OWNER_FILE
    with contextlib.suppress(FileNotFoundError):
        text = path.read_text().strip()
        if text:
            return text
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    made = str(uuid.uuid4())
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=f".{OWNER_FILE}-")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(made + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            text = path.read_text().strip()
            if text:
                return text
            os.replace(tmp, path)   # an empty file a crash left behind
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return made


def read_owner_id(data_dir: Path) -> str | None:
    """The id in ``data_dir/owner-id`` without making one (None if there is none)."""
    try:
        return (data_dir / OWNER_FILE).read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None


# --- the host ledger ----------------------------------------------------------------------------


def _entry(kind: str, name: str) -> Path:
    return LEDGER_DIR / kind / name.replace("/", "_")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".")
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def record(kind: str, name: str, owner: Owner) -> None:
    """Note on the host that ``owner`` made the ``kind`` resource ``name`` (netns, route, bridge).
    Best effort: a host without a writable /run loses the label, not the resource."""
    with contextlib.suppress(OSError):
        doc = {"owner": owner.id, "owner_dir": str(owner.data_dir), "bay": owner.bay, "name": name}
        _write(_entry(kind, name), json.dumps(doc))
        owners = LEDGER_DIR / "owners" / owner.id
        if not owners.exists():
            _write(owners, str(owner.data_dir))


def forget(kind: str, name: str) -> None:
    with contextlib.suppress(OSError):
        _entry(kind, name).unlink()


def recorded(kind: str) -> dict[str, Owner]:
    """Every ledger record of ``kind``: resource name → its owner."""
    found: dict[str, Owner] = {}
    try:
        entries = list((LEDGER_DIR / kind).iterdir())
    except OSError:
        return found
    for entry in entries:
        if entry.name.startswith("."):
            continue
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            doc = json.loads(entry.read_text())
            found[str(doc["name"])] = Owner(str(doc["owner"]), Path(doc["owner_dir"]), str(doc["bay"]))
    return found


def known_owner_dirs() -> dict[str, Path]:
    """owner id → data dir, for every owner that ever made a resource on this host since boot."""
    dirs: dict[str, Path] = {}
    with contextlib.suppress(OSError):
        for entry in (LEDGER_DIR / "owners").iterdir():
            if not entry.name.startswith("."):
                with contextlib.suppress(OSError):
                    dirs[entry.name] = Path(entry.read_text().strip())
    return dirs
