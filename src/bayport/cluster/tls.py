"""The serving certificate of the clusters' HTTPS listeners.

kubectl (client-go) sends a bearer token only over TLS, so besides the plain-HTTP ``url`` of the
contract every cluster also listens with TLS (``EmbeddedCluster.https_url``) and hands out a
kubeconfig pinning this certificate. One self-signed EC certificate for 127.0.0.1/localhost is made
per process with the ``openssl`` tool, on first use, in a private temporary directory.
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
def serving_identity() -> ServingIdentity | None:
    """The process-wide serving certificate; None when the ``openssl`` tool is not installed."""
    tool = shutil.which("openssl")
    if tool is None:
        return None
    workdir = Path(tempfile.mkdtemp(prefix="bayport-cluster-tls-"))
    atexit.register(shutil.rmtree, workdir, True)
    cert, key = workdir / "tls.crt", workdir / "tls.key"
    subprocess.run(
        [tool, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "3650", "-subj", "/CN=bayport-embedded-cluster", "-keyout", str(key), "-out", str(cert),
         "-addext", "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,digitalSignature,keyCertSign"],
        check=True, capture_output=True, timeout=30)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return ServingIdentity(cert.read_bytes(), context)
