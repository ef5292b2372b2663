"""Download a ``manifest_url`` without letting it reach what the API server can reach.

Only http and https. The host is resolved once, every address must be public (no loopback,
private, link-local, CGNAT, multicast or reserved ranges, nor IPv4 inside IPv6: ``egress``) unless
``Settings.allow_private_manifest_urls``, and the connection goes to the address that was
checked (the Host header and TLS SNI keep the name), so DNS cannot rebind between check and
use. Redirects are followed by hand, each hop checked again. The whole fetch is bounded: 5 s
and 1 MiB. Every failure is a 400 naming ``manifest_url``; the text goes on to
``manifest.parse_manifest`` like an inline manifest.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from bayport import errors
from bayport.egress import EgressPolicy, IPAddress, RefusedAddress, is_public
from bayport.egress import resolve as resolve_host
from bayport.kube.manifest import MAX_MANIFEST_BYTES

FETCH_TIMEOUT = 5.0
MAX_REDIRECTS = 5
__all__ = ["fetch_manifest", "is_public", "resolve"]


def _refuse(message: str) -> errors.InvalidInput:
    return errors.InvalidInput(f"manifest_url: {message}", field="manifest_url")


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    address: IPAddress

    @property
    def pinned_url(self) -> str:
        """``url`` with the host replaced by the checked address."""
        parts = urlsplit(self.url)
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return parts._replace(netloc=f"{literal}:{self.port}").geturl()

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


async def resolve(url: str, *, allow_private: bool) -> Target:
    """Check ``url``'s scheme and every address its host resolves to; pick the first."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _refuse(f"only http and https URLs are accepted, not {scheme or 'a relative URL'!r}")
    if parts.username or parts.password:
        raise _refuse("credentials in the URL are not accepted")
    host = parts.hostname
    if not host:
        raise _refuse(f"{url!r} names no host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise _refuse(f"invalid port in {url!r}") from exc
    try:
        addresses = await resolve_host(host, port)
        EgressPolicy(allow_private=allow_private).check(host, addresses)
    except RefusedAddress as exc:
        raise _refuse(str(exc)) from exc
    return Target(url=url, scheme=scheme, host=host, port=port, address=addresses[0])


async def fetch_manifest(url: str, *, allow_private: bool, timeout: float | None = None,
                         max_bytes: int = MAX_MANIFEST_BYTES) -> str:
    """The text at ``url`` (UTF-8), within ``timeout`` seconds (FETCH_TIMEOUT) and ``max_bytes``."""
    timeout = FETCH_TIMEOUT if timeout is None else timeout
    try:
        async with asyncio.timeout(timeout):
            return await _fetch(url, allow_private=allow_private, max_bytes=max_bytes)
    except TimeoutError as exc:
        raise _refuse(f"{url} did not answer completely within {timeout:g} s") from exc


async def _fetch(url: str, *, allow_private: bool, max_bytes: int) -> str:
    async with httpx.AsyncClient(trust_env=False, follow_redirects=False,
                                 timeout=httpx.Timeout(None)) as http:
        for _ in range(MAX_REDIRECTS + 1):
            target = await resolve(url, allow_private=allow_private)
            request = http.build_request(
                "GET", target.pinned_url,
                headers={"Host": target.host_header, "Accept": "application/yaml, application/json, "
                                                               "text/plain, */*"},
                extensions={"sni_hostname": target.host} if target.scheme == "https" else {})
            try:
                response = await http.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise _refuse(f"cannot fetch {url}: {exc or type(exc).__name__}") from exc
            try:
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                if response.status_code >= 400:
                    raise _refuse(f"{url} answered HTTP {response.status_code}")
                body = await _read_bounded(response, url, max_bytes)
            finally:
                await response.aclose()
            try:
                return body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _refuse(f"{url} did not return UTF-8 text") from exc
        raise _refuse(f"more than {MAX_REDIRECTS} redirects")


async def _read_bounded(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    too_large = _refuse(f"the manifest at {url} is larger than {max_bytes} bytes (1 MiB)")
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise too_large
            chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise _refuse(f"reading {url} failed: {exc or type(exc).__name__}") from exc
    return b"".join(chunks)
