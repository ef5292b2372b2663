"""manifest_url fetching over real HTTP on loopback: limits, SSRF refusals, redirects."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from bayport import errors
from bayport.kube.fetch import fetch_manifest, is_public, resolve
from tests.kube import seed
from tests.kube.local_http import serve

hosts: list[str] = []


async def manifest(request: Request) -> Response:
    hosts.append(request.headers["host"])
    return PlainTextResponse(seed.REDIS_MASTER_V1BETA3, media_type="application/yaml")


async def huge(request: Request) -> Response:
    async def body():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"#" * 32768 + b"\n"
    return StreamingResponse(body(), media_type="text/plain")


async def slow(request: Request) -> Response:
    async def body():  # type: ignore[no-untyped-def]
        yield b"apiVersion: v1\n"
        await asyncio.sleep(3)
        yield b"kind: Pod\n"
    return StreamingResponse(body(), media_type="text/plain")


async def missing(request: Request) -> Response:
    return PlainTextResponse("no", status_code=404)


async def to_manifest(request: Request) -> Response:
    return RedirectResponse("/redis-master.yaml")


app = Starlette(routes=[Route("/redis-master.yaml", manifest), Route("/huge", huge),
                        Route("/slow", slow), Route("/missing", missing),
                        Route("/redirect", to_manifest)])


async def test_fetches_from_a_local_server_when_private_urls_are_allowed() -> None:
    async with serve(app) as url:
        text = await fetch_manifest(f"{url}/redis-master.yaml", allow_private=True)
        port = url.rsplit(":", 1)[1]
        assert text == seed.REDIS_MASTER_V1BETA3
        assert hosts[-1] == f"127.0.0.1:{port}"
        assert await fetch_manifest(f"{url}/redirect", allow_private=True) == seed.REDIS_MASTER_V1BETA3
        localhost = f"http://localhost:{port}/redis-master.yaml"
        assert await fetch_manifest(localhost, allow_private=True) == seed.REDIS_MASTER_V1BETA3
        assert hosts[-1] == f"localhost:{port}"  # the name survives the pinned connection


async def test_loopback_and_private_addresses_are_refused_by_default() -> None:
    async with serve(app) as url:
        for target in (f"{url}/redis-master.yaml", url.replace("127.0.0.1", "localhost")):
            with pytest.raises(errors.InvalidInput) as err:
                await fetch_manifest(target, allow_private=False)
            assert err.value.field == "manifest_url"
            assert "refused" in err.value.detail
    for literal in ("http://10.1.2.3/x", "http://192.168.0.1/x", "http://169.254.169.254/latest",
                    "http://[::1]/x", "http://[::ffff:127.0.0.1]/x", "http://100.64.0.1/x",
                    "http://0.0.0.0/x"):
        with pytest.raises(errors.InvalidInput, match="refused"):
            await resolve(literal, allow_private=False)
    assert is_public(ipaddress.ip_address("8.8.8.8"))


async def test_only_http_and_https() -> None:
    for url in ("file:///etc/passwd", "ftp://example.com/x", "gopher://x/", "/relative/path",
                "http://user:pw@example.com/x"):
        with pytest.raises(errors.InvalidInput) as err:
            await fetch_manifest(url, allow_private=True)
        assert err.value.field == "manifest_url"


async def test_too_large_slow_unreachable_and_http_errors_are_400s() -> None:
    async with serve(app) as url:
        with pytest.raises(errors.InvalidInput, match="larger than"):
            await fetch_manifest(f"{url}/huge", allow_private=True)
        with pytest.raises(errors.InvalidInput, match=r"within 0\.5 s"):
            await fetch_manifest(f"{url}/slow", allow_private=True, timeout=0.5)
        with pytest.raises(errors.InvalidInput, match="HTTP 404"):
            await fetch_manifest(f"{url}/missing", allow_private=True)
    with pytest.raises(errors.InvalidInput, match="cannot fetch"):
        await fetch_manifest(f"{url}/redis-master.yaml", allow_private=True)
    with pytest.raises(errors.InvalidInput, match="cannot resolve"):
        await fetch_manifest("http://no-such-host.invalid/x", allow_private=True)


@pytest.mark.parametrize("literal", [
    "64:ff9b::7f00:1",          # NAT64 (RFC 6052) of 127.0.0.1
    "64:ff9b::a9fe:a9fe",       # NAT64 of the metadata address 169.254.169.254
    "64:ff9b:1::a00:1",         # local-use NAT64 (RFC 8215) of 10.0.0.1
    "2002:7f00:1::",            # 6to4 of 127.0.0.1
    "2002:c0a8:1::1",           # 6to4 of 192.168.0.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo whose client is 127.0.0.1
    "::7f00:1",                 # IPv4-compatible 127.0.0.1
    "::ffff:a9fe:a9fe",         # IPv4-mapped metadata address
])
async def test_ipv4_inside_ipv6_is_judged_by_the_ipv4_it_carries(literal: str) -> None:
    assert not is_public(ipaddress.ip_address(literal))
    with pytest.raises(errors.InvalidInput, match="refused"):
        await resolve(f"http://[{literal}]/x", allow_private=False)


def test_public_ipv4_inside_ipv6_stays_public() -> None:
    assert is_public(ipaddress.ip_address("64:ff9b::808:808"))  # NAT64 of 8.8.8.8
    assert is_public(ipaddress.ip_address("2002:808:808::1"))   # 6to4 of 8.8.8.8
    assert is_public(ipaddress.ip_address("2606:4700:4700::1111"))
