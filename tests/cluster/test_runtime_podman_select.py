"""Runtime selection from the baymodel label ``runtime``: podman | simulated | auto, with the reason
auto passed podman over, an error for an explicit podman that cannot work, and the real probe."""

from __future__ import annotations

import pytest

from bayport.cluster.runtime import select


@pytest.fixture
def no_podman(monkeypatch: pytest.MonkeyPatch) -> None:
    async def problem(*, bayport_network: bool) -> str | None:
        return "podman is not installed (test)"
    monkeypatch.setattr(select, "podman_problem", problem)


@pytest.fixture
def podman_works(monkeypatch: pytest.MonkeyPatch) -> None:
    async def problem(*, bayport_network: bool) -> str | None:
        return None
    monkeypatch.setattr(select, "podman_problem", problem)


async def test_auto_falls_back_to_simulated_and_says_why(no_podman: None) -> None:
    for label in (None, "auto", " Auto "):
        choice = await select.choose_runtime(label, bayport_network=True)
        assert choice == select.RuntimeChoice("simulated", "runtime simulated (auto: podman is not installed "
                                                           "(test))")


async def test_auto_picks_podman_where_it_works(podman_works: None) -> None:
    choice = await select.choose_runtime("auto", bayport_network=False)
    assert choice.runtime == "podman" and "auto: podman works" in choice.note
    assert (await select.choose_runtime("simulated", bayport_network=False)).runtime == "simulated"


async def test_explicit_podman_that_cannot_work_and_unknown_values_are_errors(no_podman: None) -> None:
    with pytest.raises(ValueError, match="runtime=podman, but podman cannot run pods here: podman is not"):
        await select.choose_runtime("podman", bayport_network=True)
    with pytest.raises(ValueError, match="must be one of auto, podman, simulated"):
        await select.choose_runtime("docker", bayport_network=True)
    assert (await select.choose_runtime("simulated", bayport_network=True)).note == "runtime simulated"


async def test_the_probe_answers_consistently() -> None:
    first = await select.podman_problem(bayport_network=False)
    assert first is None or (isinstance(first, str) and first)
    assert await select.podman_problem(bayport_network=False) == first
    assert await select.podman_available() is (first is None)
