"""Throwaway certificates made with the openssl tool: a CA, a server certificate for 127.0.0.1
and a client certificate it signed, plus an unrelated CA, for tests of real TLS verification."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass
class Pki:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_cert: Path


def openssl_available() -> bool:
    return shutil.which("openssl") is not None


def _run(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    _run("req", "-x509", *EC, "-days", "1", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert),
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,digitalSignature")
    return cert, key


def _signed(folder: Path, name: str, subject: str, extensions: str,
            ca: tuple[Path, Path]) -> tuple[Path, Path]:
    cert, key, csr, ext = (folder / f"{name}.crt", folder / f"{name}.key", folder / f"{name}.csr",
                           folder / f"{name}.ext")
    ext.write_text(extensions + "\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
    _run("req", *EC, "-subj", subject, "-keyout", str(key), "-out", str(csr))
    _run("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
         "-days", "1", "-out", str(cert), "-extfile", str(ext))
    return cert, key


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    ca = _ca(folder, "ca")
    server = _signed(folder, "server", "/CN=127.0.0.1",
                     "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth", ca)
    client = _signed(folder, "client", "/O=system:masters/CN=registrar", "extendedKeyUsage=clientAuth", ca)
    other, _ = _ca(folder, "other-ca")
    return Pki(ca_cert=ca[0], server_cert=server[0], server_key=server[1], client_cert=client[0],
               client_key=client[1], other_ca_cert=other)
