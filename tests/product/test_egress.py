"""SSRF through the product as shipped: a member of a project, with the ``bayport`` CLI against
``bayport serve``, points Bayport at the host's loopback services — by a kubeconfig label whose
server is 127.0.0.1, and by a ``manifest_url`` that hides 127.0.0.1 inside NAT64 and 6to4
literals. Bayport connects to none of them, and nothing the service answers reaches the tenant.
"""

from __future__ import annotations

import asyncio
import base64
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.product.served import BAYPORT, Served, served

pytestmark = [pytest.mark.slow]

SECRET = "s3cr3t-of-a-host-local-service"


class _Secret(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        _Secret.hits.append(self.path)
        body = f'{{"kind": "Status", "message": "{SECRET}"}}'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def loopback_service() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Secret)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Secret.hits.clear()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


async def as_member(server: Served, token: str, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        BAYPORT, *args, env={**server.env, "BAYPORT_TOKEN": token, "COLUMNS": "250"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode()


def kubeconfig_to(server_url: str) -> str:
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
           "clusters": [{"name": "c", "cluster": {"server": server_url}}],
           "users": [{"name": "u", "user": {"token": "anything"}}],
           "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}
    return base64.b64encode(yaml.safe_dump(doc).encode()).decode()


async def test_a_member_cannot_make_bayport_reach_loopback(tmp_path: Path,
                                                           loopback_service: int) -> None:
    async with served(tmp_path / "data") as server:
        member = (await server.cli("token-create", "--project", "acme", "--user", "mallory",
                                   "--role", "member")).strip().splitlines()[-1]
        target = f"http://127.0.0.1:{loopback_service}"
        code, out = await as_member(server, member, "cluster-template-create", "--name", "reg",
                                    "--driver", "kubeconfig",
                                    "--labels", f"kubeconfig={kubeconfig_to(target)}")
        assert code == 0, out
        code, out = await as_member(server, member, "bay-create", "--name", "probe",
                                    "--baymodel", "reg", "--wait")
        assert code != 0, out
        code, shown = await as_member(server, member, "bay-show", "probe", "--format", "json")
        assert '"CREATE_FAILED"' in shown and "is refused" in shown, shown
        assert SECRET not in out + shown

        for args in (("cluster-template-create", "--name", "sim", "--labels", "runtime=simulated"),
                     ("bay-create", "--name", "sim", "--baymodel", "sim", "--node-count", "1",
                      "--wait")):
            code, out = await as_member(server, member, *args)
            assert code == 0, out
        for literal in ("64:ff9b::7f00:1", "2002:7f00:1::", "::ffff:127.0.0.1"):
            code, out = await as_member(
                server, member, "pod-create", "--bay", "sim",
                "--manifest-url", f"http://[{literal}]:{loopback_service}/pod.yaml")
            assert code != 0 and "manifest_url" in out, out
            assert SECRET not in out
        assert _Secret.hits == [], "Bayport connected to the host's loopback service"
