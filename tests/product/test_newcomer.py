"""What a new user of ``bayport serve`` sees and leaves on disk: the admin token is printed once,
when it is made (later starts say where it is), and everything in the data dir that holds a
secret or a database is the owner's alone, including SQLite's WAL files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.product.served import served

pytestmark = [pytest.mark.slow]


def wide_entries(root: Path) -> list[str]:
    """Directories not 0700 and files readable by others, under ``root`` (volumes excepted:
    their modes are the tenant's containers' business)."""
    wide: list[str] = []
    for path in [root, *root.rglob("*")]:
        if "pv" in path.relative_to(root).parts:
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        public = path.suffix == ".crt" or path.name == "endpoint.json"   # a CA cert, an address
        too_wide = mode != 0o700 if path.is_dir() else (path.is_file() and not public and mode & 0o077)
        if too_wide:
            wide.append(f"{oct(mode)} {path}")
    return wide


@pytest.mark.timeout(180)
async def test_token_is_printed_only_when_made_and_the_data_dir_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with served(data) as server:
        first = server.log_path.read_text()
        assert f"admin token (new; client commands read it from {data / 'admin-token'}): {server.token}" \
            in first, first
        code, out, err = await server.shell("bayport --version && bayport bay-list", cwd=tmp_path)
        assert code == 0, err
        assert out.startswith("bayport 0.")

        await server.cli("baymodel-create", "--name", "sim", "--image-id", "fedora-atomic",
                         "--keypair-id", "default", "--external-network-id", "public",
                         "--labels", "runtime=simulated")
        await server.cli("bay-create", "--name", "b1", "--baymodel", "sim", "--wait")
        journals = list(data.glob("bays/*/objects.sqlite*"))
        assert {p.name for p in journals} >= {"objects.sqlite", "objects.sqlite-wal"}, journals
        assert (data / "bayport.db-wal").exists()
        assert wide_entries(data) == []

        await server.restart()
        second = server.log_path.read_text()
        assert server.token not in second, second
        assert f"admin token: in {data / 'admin-token'}" in second, second
        assert wide_entries(data) == []
        code, out, err = await server.shell("bayport bay-show b1", cwd=tmp_path)
        assert code == 0 and "CREATE_COMPLETE" in out, err
