"""Files of the data dir that hold secrets or tenants' data are their owner's alone.

SQLite creates a database's ``-wal`` and ``-shm`` files with the mode of the database file
itself, so making the database file 0600 *before* SQLite first opens it keeps all three
private; a chmod afterwards would leave the WAL with the process umask (usually 0644). Used by
the control-plane database (``db.base``) and by every embedded cluster's object journal.
"""

from __future__ import annotations

import os
from pathlib import Path

SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> None:
    """``path`` exists and is 0700, also when it existed before with a wider mode."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)


def private_sqlite(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist (an empty file is a valid, empty
    SQLite database), and narrow it and its side files to 0600 if an older run left them wider."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for candidate in (path, *(path.with_name(path.name + s) for s in SQLITE_SIDE_FILES)):
        try:
            if candidate.stat().st_mode & 0o077:
                candidate.chmod(0o600)
        except FileNotFoundError:
            continue
