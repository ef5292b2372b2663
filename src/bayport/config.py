"""One Settings object for every Bayport process.

Values come from BAYPORT_* environment variables, then an optional TOML file
(``BAYPORT_CONFIG_FILE``), then the defaults below. Server commands expose the
same names as options and write them back into the environment, so a child
process sees exactly what its parent was told. Client commands read the same
object (``client_url``, ``client_token``), so a shell that started ``bayport serve``
with BAYPORT_BIND / BAYPORT_DATA_DIR finds that server without any other variable.
"""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_BIND = "127.0.0.1:9511"
# A server bound to every address is reached, from its own machine, on loopback.
_ANY_ADDRESS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "::": "[::1]", "[::]": "[::1]"}


def _default_data_dir() -> Path:
    return Path(os.path.expanduser("~/.local/share/bayport"))


class Settings(BaseSettings):
    """Process-wide configuration; read once, then passed down explicitly."""

    model_config = SettingsConfigDict(env_prefix="BAYPORT_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    bind: str = DEFAULT_BIND
    database_url: str | None = None
    transport_url: str = "memory://"
    log_level: str = "INFO"
    # Seconds an RPC call waits for its reply before the caller gets a clear error.
    rpc_timeout: float = 30.0
    # Conductors write a heartbeat this often; a conductor silent for three
    # intervals is dead and its IN_PROGRESS rows are taken over.
    heartbeat_interval: float = 2.0
    default_create_timeout_minutes: int = 60
    allow_private_manifest_urls: bool = False
    # Per-project limits where no /v1/quotas row sets one, over api.quotas.DEFAULTS: e.g.
    # BAYPORT_QUOTA_DEFAULTS='{"Cluster": 50, "CreateTimeout": 120}'.
    quota_defaults: dict[str, int] = Field(default_factory=dict)
    # Networks (CIDRs) where clusters that members register with the kubeconfig driver may live,
    # beyond public addresses: say "10.20.0.0/16" for the site's own clusters. Loopback and
    # link-local stay refused unless listed. Kubeconfigs the operator placed are not checked.
    cluster_allowed_networks: Annotated[list[str], NoDecode] = Field(default_factory=list)
    port_wait_seconds: float = 30.0
    tenant_service_url: str | None = None
    public_url: str | None = None
    api_workers: int = 1
    # Runtime of embedded bays whose template has no ``runtime`` label: "auto" runs pods as
    # podman containers where podman works and simulates them elsewhere (the bay says which).
    default_runtime: str = "auto"
    # Durability of embedded clusters' object journals (cluster.journal): "normal" survives a
    # killed process; "full" also fsyncs every write (survives power loss; ~4x the write cost).
    cluster_sync: str = "normal"
    # The event log (db.events, GET /v1/events): kept this long and at most this many rows;
    # an idle stream gets a comment this often (so proxies and clients see it is alive).
    events_retention_hours: float = 24.0
    events_retention_rows: int = Field(default=100_000, ge=1)
    events_heartbeat_seconds: float = Field(default=15.0, gt=0)
    # /metrics answers only admins unless this is set (a scraper then needs no token); a
    # conductor or netd process serves its own metrics on this port when it is set.
    metrics_public: bool = False
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # Client side: where the API is (BAYPORT_URL; default: derived from ``bind``) and which
    # token to send (BAYPORT_TOKEN; default: the admin token file in ``data_dir``).
    url: str | None = None
    token: str | None = None

    @field_validator("data_dir", mode="before")
    @classmethod
    def _expand(cls, value: object) -> object:
        if isinstance(value, str):
            return Path(os.path.expanduser(value))
        return value

    @field_validator("cluster_allowed_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        """Accept "a, b" as well as a JSON list or TOML array."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("cluster_allowed_networks")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ValueError(f"{network!r} is not a network in CIDR notation") from exc
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("BAYPORT_CONFIG_FILE")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or a SQLite file in the data dir (embedded mode)."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'bayport.db'}"

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.bind_host_port
        return (host or "127.0.0.1"), port

    @property
    def admin_token_file(self) -> Path:
        return self.data_dir / "admin-token"

    @property
    def client_url(self) -> str:
        """The API a client command talks to: BAYPORT_URL, else the local server's ``bind``."""
        if self.url:
            return self.url.rstrip("/")
        host, port = self.bind_host_port
        host = _ANY_ADDRESS.get(host, host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @property
    def bind_host_port(self) -> tuple[str, int]:
        """``bind`` as given (host may be empty or 0.0.0.0); ``host_port`` is what uvicorn binds."""
        host, _, port = self.bind.strip().rpartition(":")
        return host, int(port)

    def client_token(self) -> str | None:
        """BAYPORT_TOKEN, else the admin token ``serve`` / ``db upgrade`` wrote into the data dir."""
        if self.token:
            return self.token.strip()
        try:
            return self.admin_token_file.read_text().strip() or None
        except (FileNotFoundError, NotADirectoryError):
            return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (cached; tests build their own Settings)."""
    return Settings()
