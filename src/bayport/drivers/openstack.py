"""The OpenStack boundary: settings, Keystone v3 password auth and error wrapping.

The heat driver (``drivers/heat.py``) talks to OpenStack over plain REST with httpx;
this module owns everything that is OpenStack rather than Heat: where the
credentials come from (``BAYPORT_OS_*``), the scoped token and its service catalog,
and turning HTTP failures into ``TemporaryError`` (retried by the conductor until
the bay's deadline) or ``PermanentError`` (the bay fails with OpenStack's message).
``drivers/heat_api.py`` builds on ``OpenStackSession`` for the stack calls.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bayport import errors

log = logging.getLogger(__name__)

# A token this close to its expiry is renewed before use, so a long poll never starts
# with a token that dies halfway.
TOKEN_RENEW_MARGIN = timedelta(minutes=5)
# Upper bound on a Retry-After we honour; the conductor's deadline bounds the total anyway.
MAX_RETRY_AFTER = 60.0


class OpenStackSettings(BaseSettings):
    """Where the heat driver authenticates; read from ``BAYPORT_OS_*`` when the driver is built."""

    model_config = SettingsConfigDict(env_prefix="BAYPORT_OS_", extra="ignore")

    auth_url: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    project_name: str | None = None
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"
    region_name: str | None = None
    interface: str = "public"
    # PEM bundle that signs the OpenStack endpoints, when not in the system store.
    cacert: Path | None = None
    request_timeout: float = 30.0
    # Seconds between two looks at a stack; Heat itself converges in minutes.
    heat_poll_interval: float = 10.0

    def missing(self) -> list[str]:
        required = {"auth_url": self.auth_url, "username": self.username, "password": self.password,
                    "project_name": self.project_name}
        return [f"BAYPORT_OS_{name.upper()}" for name, value in required.items() if not value]


@dataclass
class ScopedToken:
    value: str
    expires_at: datetime | None
    project_id: str
    catalog: list[dict[str, Any]]

    def fresh(self) -> bool:
        return self.expires_at is None or self.expires_at - TOKEN_RENEW_MARGIN > datetime.now(UTC)


def identity_url(auth_url: str) -> str:
    """``http://keystone:5000``, ``…/v3`` and ``…/v3/`` all mean the same v3 endpoint."""
    base = auth_url.rstrip("/")
    if base.endswith("/v3"):
        base = base[: -len("/v3")]
    return f"{base}/v3"


def error_message(response: httpx.Response) -> str:
    """The human part of an OpenStack error body (Heat, Keystone and Neutron shapes)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        for key in ("explanation", "message", "title"):
            if body.get(key):
                return str(body[key])
    return response.text.strip()[:500]


def retry_delay(response: httpx.Response, default: float) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return default


def raise_for_openstack(response: httpx.Response, what: str, *, retry_after: float) -> None:
    """Wrap a failed answer once: 5xx and 429 are worth retrying, other 4xx are not."""
    if response.is_success:
        return
    message = f"{what}: {response.status_code} {error_message(response)}"
    if response.status_code >= 500 or response.status_code == 429:
        raise errors.TemporaryError(message, delay=retry_delay(response, retry_after))
    raise errors.PermanentError(message)


def catalog_endpoint(catalog: list[dict[str, Any]], service_type: str, interface: str,
                     region: str | None, project_id: str) -> str:
    """The URL of ``service_type`` in a v3 catalog, with any ``%(tenant_id)s`` filled in."""
    for service in catalog:
        if service.get("type") != service_type:
            continue
        for endpoint in service.get("endpoints", []):
            if endpoint.get("interface") != interface:
                continue
            if region and region not in (endpoint.get("region_id"), endpoint.get("region")):
                continue
            url = str(endpoint["url"]).rstrip("/")
            for marker in ("%(tenant_id)s", "%(project_id)s", "$(tenant_id)s", "$(project_id)s"):
                url = url.replace(marker, project_id)
            return url
    where = f" in region {region}" if region else ""
    raise errors.PermanentError(
        f"the Keystone catalog has no {interface} {service_type} endpoint{where}")


def _parse_expiry(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class OpenStackSession:
    """One HTTP client and one project-scoped token, shared by every bay of a conductor."""

    def __init__(self, settings: OpenStackSettings) -> None:
        self.settings = settings
        self._client: httpx.AsyncClient | None = None
        self._token: ScopedToken | None = None
        self._auth_lock = asyncio.Lock()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            verify: ssl.SSLContext | bool = True
            if self.settings.cacert is not None:
                verify = ssl.create_default_context(cafile=str(self.settings.cacert))
            self._client = httpx.AsyncClient(timeout=self.settings.request_timeout, verify=verify,
                                             follow_redirects=True)
        return self._client

    def _check_configured(self) -> None:
        missing = self.settings.missing()
        if missing:
            raise errors.PermanentError(
                f"the heat driver is not configured: set {', '.join(missing)}")

    async def token(self) -> ScopedToken:
        """A valid scoped token, authenticating (once, for all waiters) when needed."""
        self._check_configured()
        async with self._auth_lock:
            if self._token is None or not self._token.fresh():
                self._token = await self._authenticate()
            return self._token

    def forget_token(self, value: str) -> None:
        """Heat refused ``value`` (revoked, expired early): the next call authenticates again."""
        if self._token is not None and self._token.value == value:
            self._token = None

    async def _authenticate(self) -> ScopedToken:
        s = self.settings
        password = s.password.get_secret_value() if s.password is not None else ""
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": s.username, "domain": {"name": s.user_domain_name}, "password": password}}},
            "scope": {"project": {"name": s.project_name, "domain": {"name": s.project_domain_name}}},
        }}
        url = f"{identity_url(s.auth_url or '')}/auth/tokens"
        response = await self.request("POST", url, "Keystone authentication", json=body)
        if response.status_code == 401:
            raise errors.PermanentError(
                f"Keystone at {s.auth_url} refused the credentials of user {s.username} "
                f"for project {s.project_name}: {error_message(response)}")
        raise_for_openstack(response, "Keystone authentication", retry_after=s.heat_poll_interval)
        value = response.headers.get("X-Subject-Token")
        token = response.json().get("token", {})
        project_id = token.get("project", {}).get("id")
        if not value or not project_id:
            raise errors.PermanentError(
                "Keystone returned no project-scoped token (missing X-Subject-Token or project)")
        log.info("authenticated to Keystone at %s as %s (project %s)", s.auth_url, s.username,
                 project_id)
        return ScopedToken(value=value, expires_at=_parse_expiry(token.get("expires_at")),
                           project_id=str(project_id), catalog=list(token.get("catalog", [])))

    async def endpoint(self, service_type: str) -> str:
        token = await self.token()
        return catalog_endpoint(token.catalog, service_type, self.settings.interface,
                                self.settings.region_name, token.project_id)

    async def request(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        """One HTTP exchange; a connection that fails or times out is a TemporaryError."""
        try:
            return await self.client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise errors.TemporaryError(
                f"{what}: cannot reach {url}: {type(exc).__name__}: {exc}",
                delay=self.settings.heat_poll_interval) from exc

    async def authorized(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        """A request with the scoped token; one re-authentication when the token is refused."""
        for attempt in range(2):
            token = await self.token()
            headers = {"X-Auth-Token": token.value, "Accept": "application/json"}
            response = await self.request(method, url, what, headers=headers, **kwargs)
            if response.status_code != 401 or attempt:
                return response
            self.forget_token(token.value)
        return response

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._token = None
