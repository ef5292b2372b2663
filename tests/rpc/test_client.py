"""RPCClient and RPCServer set-up rules that do not depend on a backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bayport import errors
from bayport.config import get_settings
from bayport.objects.context import RequestContext
from bayport.rpc import RPCClient, RPCServer, current_call, get_transport, is_redelivered
from bayport.rpc.server import endpoint_methods
from tests.rpc.conftest import Endpoint


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("BAYPORT_RPC_TIMEOUT", "7.5")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_default_timeout_comes_from_settings(fresh_settings: None) -> None:
    transport = get_transport("memory://")
    assert RPCClient(transport, "conductor").timeout == 7.5
    assert RPCClient(transport, "conductor", timeout=2).timeout == 2


def test_prepare_changes_version_or_timeout_only() -> None:
    client = RPCClient(get_transport("memory://"), "conductor", version="1.1", timeout=3)
    newer = client.prepare(version="1.4")
    assert (newer.topic, newer.version, newer.timeout) == ("conductor", "1.4", 3)
    assert client.prepare(timeout=9).version == "1.1"


def test_bad_versions_and_topics_are_refused_at_construction() -> None:
    transport = get_transport("memory://")
    with pytest.raises(ValueError, match=r"MAJOR\.MINOR"):
        RPCClient(transport, "conductor", version="1")
    with pytest.raises(ValueError, match=r"MAJOR\.MINOR"):
        RPCServer(transport, "conductor", Endpoint(), version="v2")
    with pytest.raises(errors.InvalidInput):
        RPCClient(transport, "bayport.#")
    with pytest.raises(ValueError):
        RPCServer(transport, "conductor", Endpoint(), concurrency=0)


def test_only_public_coroutines_of_the_endpoint_are_methods() -> None:
    assert sorted(endpoint_methods(Endpoint())) == ["crash", "describe", "echo", "fail", "remember", "work"]
    assert RPCServer(get_transport("memory://"), "conductor", Endpoint()).version == "1.2"


async def test_an_argument_may_be_named_method() -> None:
    async with get_transport("memory://") as transport, RPCServer(transport, "names", Endpoint()):
        client = RPCClient(transport, "names", timeout=5)
        result = await client.call(RequestContext(), "echo", method="POST")
    assert result["args"] == {"method": "POST"}


def test_call_info_outside_a_handler() -> None:
    assert is_redelivered() is False
    with pytest.raises(RuntimeError, match="inside an RPC handler"):
        current_call()
