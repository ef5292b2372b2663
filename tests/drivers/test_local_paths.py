"""The local driver's bay directories are named by canonical uuids only, so a bay row can never
make it create or delete a directory outside data_dir/bays."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from bayport import errors
from bayport.drivers.local import bay_dir


def test_a_canonical_uuid_names_the_bay_directory(tmp_path: Path) -> None:
    ident = str(uuid.uuid4())
    assert bay_dir(tmp_path, ident) == tmp_path / "bays" / ident


@pytest.mark.parametrize("ident", ["../..", "/", "", "x/../../etc", str(uuid.uuid4()).upper(),
                                   str(uuid.uuid4()).replace("-", ""), "../" + str(uuid.uuid4())])
def test_anything_else_is_refused(tmp_path: Path, ident: str) -> None:
    with pytest.raises(errors.InvalidInput):
        bay_dir(tmp_path, ident)
