"""How to reach a cluster, read from a kubeconfig: server, CA, token or client certificate.

The kubeconfig driver (``drivers/kubeconfig.py``) gets a kubeconfig from a bay's labels
and turns it into a ``ClusterAccess`` here; the access then builds the TLS context and
headers for httpx. Supported: bearer ``token`` / ``tokenFile``, client certificates
(inline ``-data`` or file paths), ``certificate-authority(-data)``,
``insecure-skip-tls-verify`` and ``tls-server-name``. Credential plugins (``exec``,
``auth-provider``) are refused: the conductor runs no user-supplied programs.
"""

from __future__ import annotations

import base64
import binascii
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bayport import errors


def _refuse(detail: str) -> errors.PermanentError:
    return errors.PermanentError(f"unusable kubeconfig: {detail}")


def _named(doc: dict[str, Any], section: str, name: str, key: str) -> dict[str, Any]:
    for entry in doc.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(key) or {}
            if not isinstance(value, dict):
                raise _refuse(f"{section} entry {name!r} has no {key} mapping")
            return value
    raise _refuse(f"no {key} named {name!r} in {section}")


def _pem(data: Any, path: Any, base_dir: Path | None, what: str) -> bytes | None:
    """A PEM from a ``*-data`` field (base64) or a file path relative to the kubeconfig."""
    if data:
        try:
            return base64.b64decode(str(data), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _refuse(f"{what}-data is not base64") from exc
    if path:
        return _read(path, base_dir, what).encode()
    return None


def _read(path: Any, base_dir: Path | None, what: str) -> str:
    if base_dir is None:
        # A kubeconfig from a tenant's label must not make the conductor read its own files
        # (and send, say, its service-account token to the tenant's server).
        raise _refuse(f"{what} refers to a file; a kubeconfig given in a label must carry its "
                      "certificates and token inline")
    file = Path(str(path)).expanduser()
    if not file.is_absolute():
        file = base_dir / file
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise _refuse(f"cannot read {what} {file}: {exc.strerror or exc}") from exc


@dataclass
class ClusterAccess:
    server: str
    ca_pem: bytes | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    token: str | None = None
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None

    @property
    def ca_data(self) -> str | None:
        """The CA as kubeconfig's ``certificate-authority-data`` (what BayCredential stores)."""
        return base64.b64encode(self.ca_pem).decode() if self.ca_pem else None

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def ssl_context(self) -> ssl.SSLContext:
        """Verify the server with the kubeconfig's CA (else the system store); present the
        client certificate when there is one."""
        try:
            context = ssl.create_default_context(
                cadata=self.ca_pem.decode() if self.ca_pem else None)
        except (ssl.SSLError, ValueError) as exc:
            raise _refuse(f"the certificate authority is not a PEM certificate: {exc}") from exc
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert_pem and self.client_key_pem:
            # ssl loads a certificate chain only from files: they live in a private (0700)
            # directory just long enough to be read.
            with tempfile.TemporaryDirectory(prefix="bayport-kubeconfig-") as tmp:
                cert, key = Path(tmp) / "client.crt", Path(tmp) / "client.key"
                cert.write_bytes(self.client_cert_pem)
                key.write_bytes(self.client_key_pem)
                try:
                    context.load_cert_chain(cert, key)
                except ssl.SSLError as exc:
                    raise _refuse(f"the client certificate or key is not usable: {exc}") from exc
        return context

    def request_extensions(self) -> dict[str, Any]:
        return {"sni_hostname": self.tls_server_name} if self.tls_server_name else {}


def parse_kubeconfig(text: str, *, context: str | None = None,
                     base_dir: Path | None = None) -> ClusterAccess:
    """The access of ``context`` (default: current-context, or the only context there is).

    File references in the kubeconfig are read relative to ``base_dir``, and refused when it
    is None (a kubeconfig that did not come from the operator's directory).
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _refuse(f"not YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise _refuse("not a kubeconfig document")
    contexts = [c.get("name") for c in doc.get("contexts") or [] if isinstance(c, dict)]
    name = context or doc.get("current-context") or (contexts[0] if len(contexts) == 1 else None)
    if not name:
        raise _refuse("no current-context, and more than one context to choose from")
    ctx = _named(doc, "contexts", name, "context")
    cluster = _named(doc, "clusters", str(ctx.get("cluster")), "cluster")
    user = _named(doc, "users", str(ctx["user"]), "user") if ctx.get("user") else {}
    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise _refuse(f"cluster {ctx.get('cluster')!r} has no http(s) server URL")
    if user.get("exec") or user.get("auth-provider"):
        raise _refuse(f"user {ctx.get('user')!r} needs a credential plugin (exec/auth-provider), "
                      "which the conductor does not run; give a token or a client certificate")
    token = user.get("token") or None
    if token is None and user.get("tokenFile"):
        token = _read(user["tokenFile"], base_dir, "tokenFile").strip()
    access = ClusterAccess(
        server=server,
        ca_pem=_pem(cluster.get("certificate-authority-data"), cluster.get("certificate-authority"),
                    base_dir, "certificate-authority"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name") or None,
        token=str(token) if token else None,
        client_cert_pem=_pem(user.get("client-certificate-data"), user.get("client-certificate"),
                             base_dir, "client-certificate"),
        client_key_pem=_pem(user.get("client-key-data"), user.get("client-key"), base_dir,
                            "client-key"))
    if bool(access.client_cert_pem) != bool(access.client_key_pem):
        raise _refuse(f"user {ctx.get('user')!r} has a client certificate without its key, or a key "
                      "without its certificate")
    return access
