"""Suite-wide test policy: real services where the machine has them, and under
CI=true a test that would skip for a missing service fails instead, so a green
CI run means every backend was really exercised (DESIGN.md, Testing).
"""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, reason: str) -> None:
    """Skip when ``condition`` is false; under CI=true, fail with the same reason."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI but unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
async def stack(tmp_path):  # type: ignore[no-untyped-def]
    """A running embedded Bayport (API + conductor + memory bus + SQLite) for one test."""
    from tests.stack import run_stack

    async with run_stack(tmp_path) as s:
        yield s
