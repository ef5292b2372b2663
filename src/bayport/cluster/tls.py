"""The serving certificate of the clusters' HTTPS listeners.

kubectl (client-go) sends a bearer token only over TLS, so besides the plain-HTTP ``url`` of the
contract every cluster also listens with TLS (``EmbeddedCluster.https_url``) and hands out a
kubeconfig pinning this certificate. One self-signed EC certificate for 127.0.0.1/localhost is made
with the ``openssl`` tool on first use: kept in the cluster's state directory when it has one, so
the certificate (the CA every kubeconfig pins) survives a restart; else one per process, in a
private temporary directory.
"""

from __future__ import annotations

import atexit
import base64
import shutil
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class ServingIdentity:
    cert_pem: bytes
    context: ssl.SSLContext

    @property
    def ca_data(self) -> str:
        """The certificate as kubeconfig ``certificate-authority-data`` (base64 PEM)."""
        return base64.b64encode(self.cert_pem).decode()


@cache
def serving_identity(directory: Path | None = None) -> ServingIdentity | None:
    """The serving certificate kept in ``directory`` (made there the first time), or the
    process-wide one; None when the ``openssl`` tool is not installed."""
    if directory is not None:
        cert, key = directory / "tls.crt", directory / "tls.key"
        if cert.exists() and key.exists():
            return _identity(cert, key)
    tool = shutil.which("openssl")
    if tool is None:
        return None
    if directory is None:
        workdir = Path(tempfile.mkdtemp(prefix="bayport-cluster-tls-"))
        atexit.register(shutil.rmtree, workdir, True)
    else:
        workdir = directory
        workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert, key = workdir / "tls.crt", workdir / "tls.key"
    subprocess.run(
        [tool, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "3650", "-subj", "/CN=bayport-embedded-cluster", "-keyout", str(key), "-out", str(cert),
         "-addext", "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,digitalSignature,keyCertSign"],
        check=True, capture_output=True, timeout=30)
    key.chmod(0o600)
    return _identity(cert, key)


def _identity(cert: Path, key: Path) -> ServingIdentity:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return ServingIdentity(cert.read_bytes(), context)
