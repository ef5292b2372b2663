"""The kubeconfig driver registering clusters that exist: a real embedded cluster over verified
TLS, and a stand-in API for client certificates, legacy labels and refusals."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bayport import errors
from bayport.cluster.host import ClusterSpec, EmbeddedCluster
from bayport.config import Settings
from bayport.drivers.kubeconfig import KubeconfigDriver
from bayport.objects.bay import Bay, BayModel
from tests.conftest import require
from tests.drivers.fake_kube import FakeKube
from tests.drivers.pki import Pki, make_pki, openssl_available
from tests.drivers.serve import serve

PROJECT = "p-registrar"


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def kubeconfig(server: str, *, cluster: dict[str, Any] | None = None, user: dict[str, Any] | None = None,
               extra_contexts: int = 0, current: str | None = "main") -> str:
    doc: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, **(cluster or {})}},
                     {"name": "nowhere", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": user or {}}, {"name": "nobody", "user": {"token": "x"}}],
        "contexts": [{"name": "main", "context": {"cluster": "c", "user": "u"}}]
        + [{"name": f"other-{i}", "context": {"cluster": "nowhere", "user": "nobody"}}
           for i in range(extra_contexts)],
    }
    if current:
        doc["current-context"] = current
    return yaml.safe_dump(doc)


def registered(labels: dict[str, str]) -> tuple[Bay, BayModel]:
    baymodel = BayModel(uuid=str(uuid.uuid4()), driver="kubeconfig", project_id=PROJECT)
    bay = Bay(uuid=str(uuid.uuid4()), name="existing", project_id=PROJECT, baymodel_id=baymodel.uuid,
              labels=labels)
    return bay, baymodel


@pytest.fixture
def driver(tmp_path: Path) -> KubeconfigDriver:
    # The stand-in clusters listen on loopback, which a member's kubeconfig may reach only when
    # the operator allows it; the attack tests below use a driver with the default settings.
    driver = KubeconfigDriver(Settings(data_dir=tmp_path / "data",
                                       cluster_allowed_networks=["127.0.0.0/8"]))
    driver.retry_delay = 0.01
    return driver


@pytest.fixture
def default_driver(tmp_path: Path) -> KubeconfigDriver:
    return KubeconfigDriver(Settings(data_dir=tmp_path / "data"))


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[EmbeddedCluster]:
    spec = ClusterSpec(name="registered", uid=str(uuid.uuid4()), token=secrets.token_urlsafe(16),
                       master_count=1, node_count=2, data_dir=tmp_path / "cluster")
    cluster = EmbeddedCluster(spec)
    await cluster.start()
    yield cluster
    await cluster.stop()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    require(openssl_available(), "the openssl tool makes the test certificates")
    return make_pki(tmp_path / "pki")


async def test_registers_an_embedded_cluster_over_verified_tls(
        driver: KubeconfigDriver, embedded: EmbeddedCluster) -> None:
    require(bool(embedded.https_url), "the embedded cluster serves TLS only when openssl is installed")
    text = embedded.kubeconfig()
    bay, baymodel = registered({"kubeconfig": b64(text)})

    result = await driver.create(bay, baymodel)

    assert result.api_address == embedded.https_url
    assert result.master_addresses == embedded.master_addresses()
    assert sorted(result.node_addresses) == sorted(embedded.node_addresses())
    assert len(result.node_addresses) == 2
    assert result.coe_version == embedded.spec.version
    assert result.stack_id is None
    creds = result.credentials
    assert (creds.server, creds.token, creds.kubeconfig) == (embedded.https_url, embedded.spec.token, text)
    assert creds.ca_data == yaml.safe_load(text)["clusters"][0]["cluster"]["certificate-authority-data"]
    assert await driver.health(bay, baymodel) == "HEALTHY"


async def test_a_refused_token_fails_at_once(driver: KubeconfigDriver, embedded: EmbeddedCluster) -> None:
    doc = yaml.safe_load(embedded.kubeconfig())
    doc["users"][0]["user"]["token"] = "not-the-token"
    bay, baymodel = registered({"kubeconfig": b64(yaml.safe_dump(doc))})
    with pytest.raises(errors.PermanentError, match=r"refused the credentials \(401 on /version\)"):
        await driver.create(bay, baymodel)


async def test_an_unreachable_cluster_is_temporary(
        driver: KubeconfigDriver, embedded: EmbeddedCluster) -> None:
    bay, baymodel = registered({"kubeconfig": b64(embedded.kubeconfig())})
    await embedded.stop()
    with pytest.raises(errors.TemporaryError, match="is unreachable") as caught:
        await driver.create(bay, baymodel)
    assert caught.value.delay == driver.retry_delay
    assert await driver.health(bay, baymodel) == "UNHEALTHY"


async def test_a_certificate_from_another_ca_is_refused(
        driver: KubeconfigDriver, embedded: EmbeddedCluster, pki: Pki) -> None:
    require(bool(embedded.https_url), "the embedded cluster serves TLS only when openssl is installed")
    doc = yaml.safe_load(embedded.kubeconfig())
    doc["clusters"][0]["cluster"]["certificate-authority-data"] = b64(pki.other_ca_cert.read_bytes())
    bay, baymodel = registered({"kubeconfig": b64(yaml.safe_dump(doc))})
    with pytest.raises(errors.PermanentError, match="does not verify against the kubeconfig's"):
        await driver.create(bay, baymodel)


async def test_resize_is_refused_and_delete_leaves_the_cluster_alone(
        driver: KubeconfigDriver, embedded: EmbeddedCluster) -> None:
    bay, baymodel = registered({"kubeconfig": b64(embedded.kubeconfig())})
    await driver.create(bay, baymodel)
    with pytest.raises(errors.PermanentError, match="resized by its own operator"):
        await driver.resize(bay, baymodel, 5)
    await driver.delete(bay, baymodel)
    assert (await driver.create(bay, baymodel)).node_addresses, "the cluster still answers"


async def test_client_certificates_and_node_roles(driver: KubeconfigDriver, pki: Pki) -> None:
    fake = FakeKube()
    tls = {"ssl_certfile": str(pki.server_cert), "ssl_keyfile": str(pki.server_key),
           "ssl_ca_certs": str(pki.ca_cert), "ssl_cert_reqs": 2}  # CERT_REQUIRED: no cert, no handshake
    async with serve(fake.app, **tls) as url:
        text = kubeconfig(url, cluster={"certificate-authority-data": b64(pki.ca_cert.read_bytes())},
                          user={"client-certificate-data": b64(pki.client_cert.read_bytes()),
                                "client-key-data": b64(pki.client_key.read_bytes())})
        bay, baymodel = registered({"kubeconfig": b64(text)})
        result = await driver.create(bay, baymodel)

        no_cert = kubeconfig(url, cluster={"certificate-authority-data": b64(pki.ca_cert.read_bytes())},
                             user={"token": "t"})
        bay2, _ = registered({"kubeconfig": b64(no_cert)})
        # The server resets a handshake without a client certificate: indistinguishable from
        # a flaky network, so it is retried until the deadline.
        with pytest.raises(errors.TemporaryError, match="unreachable"):
            await driver.create(bay2, baymodel)

    assert fake.paths[:2] == ["/version", "/api/v1/nodes"]
    assert result.master_addresses == ["192.168.1.10", "192.168.1.11"]
    assert result.node_addresses == ["203.0.113.7", "192.168.1.21"]
    assert result.coe_version == "v1.29.4"
    assert result.credentials.token is None
    assert result.credentials.kubeconfig == text
    assert result.credentials.ca_data == b64(pki.ca_cert.read_bytes())


async def test_forbidden_and_unavailable_answers(driver: KubeconfigDriver) -> None:
    fake = FakeKube(token="secret")
    async with serve(fake.app) as url:
        bay, baymodel = registered({"kubeconfig": b64(kubeconfig(url, user={"token": "secret"}))})
        fake.unavailable = 1
        with pytest.raises(errors.TemporaryError, match="answered 503 on /version"):
            await driver.create(bay, baymodel)
        fake.forbidden = True
        with pytest.raises(errors.PermanentError,
                           match=r"refused the credentials \(403 on /version\): nodes is forbidden"):
            await driver.create(bay, baymodel)
        fake.forbidden = False
        assert (await driver.create(bay, baymodel)).credentials.token == "secret"


async def test_the_context_label_picks_among_several(driver: KubeconfigDriver) -> None:
    fake = FakeKube(token="secret")
    async with serve(fake.app) as url:
        text = kubeconfig(url, user={"token": "secret"}, extra_contexts=2, current="other-0")
        bay, baymodel = registered({"kubeconfig": b64(text), "kubeconfig_context": "main"})
        result = await driver.create(bay, baymodel)
    assert result.api_address == url


async def test_kubeconfig_path_is_read_from_the_projects_directory(
        driver: KubeconfigDriver, tmp_path: Path) -> None:
    fake = FakeKube(token="from-file")
    folder = driver.kubeconfig_dir(PROJECT)
    folder.mkdir(parents=True)
    (folder / "token").write_text("from-file\n")
    async with serve(fake.app) as url:
        (folder / "prod.yaml").write_text(kubeconfig(url, user={"tokenFile": "token"}))
        bay, baymodel = registered({"kubeconfig_path": "prod.yaml"})
        result = await driver.create(bay, baymodel)
    assert result.credentials.token == "from-file"

    outside = tmp_path / "admin.conf"
    outside.write_text(kubeconfig("https://127.0.0.1:1", user={"token": "operator"}))
    for path in (str(outside), "../../admin.conf", "../other-project/prod.yaml"):
        bay, baymodel = registered({"kubeconfig_path": path})
        with pytest.raises(errors.PermanentError, match="must name a file under"):
            await driver.create(bay, baymodel)


@pytest.mark.parametrize(("labels", "message"), [
    ({}, "needs a 'kubeconfig' label"),
    ({"kubeconfig": "%%%"}, "must hold the kubeconfig YAML in base64"),
    ({"kubeconfig": b64("clusters: [unclosed")}, "not YAML"),
    ({"kubeconfig": b64(kubeconfig("https://k:6443", current=None, extra_contexts=1))},
     "no current-context"),
    ({"kubeconfig": b64(kubeconfig("ftp://k", user={"token": "t"}))}, "no http\\(s\\) server URL"),
    ({"kubeconfig": b64(kubeconfig("https://k:6443", user={"exec": {"command": "aws"}}))},
     "credential plugin"),
    ({"kubeconfig": b64(kubeconfig("https://k:6443", user={"tokenFile": "/var/run/secrets/token"}))},
     "must carry its certificates and token inline"),
    ({"kubeconfig": b64(kubeconfig("https://k:6443", user={"client-certificate-data": b64("x")}))},
     "without its key"),
    ({"kubeconfig_path": "missing.yaml"}, "cannot read the kubeconfig"),
])
async def test_unusable_kubeconfigs_fail_with_the_reason(
        driver: KubeconfigDriver, labels: dict[str, str], message: str) -> None:
    bay, baymodel = registered(labels)
    with pytest.raises(errors.PermanentError, match=message):
        await driver.create(bay, baymodel)
    assert await driver.health(bay, baymodel) == "UNKNOWN"


SECRET = "s3cr3t-from-a-loopback-service"


async def loopback_service(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A host-local service that is no Kubernetes API: its answer must never reach a tenant."""
    await send({"type": "http.response.start", "status": 404,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": SECRET.encode()})


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
async def test_a_members_kubeconfig_cannot_reach_loopback(default_driver: KubeconfigDriver,
                                                          host: str) -> None:
    async with serve(loopback_service) as url:
        port = url.rsplit(":", 1)[1]
        bay, baymodel = registered({"kubeconfig": b64(kubeconfig(f"http://{host}:{port}",
                                                                 user={"token": "t"}))})
        with pytest.raises(errors.PermanentError, match="is refused") as err:
            await default_driver.create(bay, baymodel)
        assert SECRET not in str(err.value)
        assert "BAYPORT_CLUSTER_ALLOWED_NETWORKS" in str(err.value)
        assert await default_driver.health(bay, baymodel) == "UNKNOWN"


@pytest.mark.parametrize("server", ["https://169.254.169.254", "https://[64:ff9b::7f00:1]:6443",
                                    "https://[2002:7f00:1::]:6443", "https://10.1.2.3:6443"])
async def test_metadata_private_and_tunnelled_loopback_are_refused(
        default_driver: KubeconfigDriver, server: str) -> None:
    bay, baymodel = registered({"kubeconfig": b64(kubeconfig(server, user={"token": "t"}))})
    with pytest.raises(errors.PermanentError, match="is refused"):
        await default_driver.create(bay, baymodel)


async def test_a_non_kubernetes_answer_is_not_echoed(driver: KubeconfigDriver) -> None:
    async with serve(loopback_service) as url:
        bay, baymodel = registered({"kubeconfig": b64(kubeconfig(url, user={"token": "t"}))})
        with pytest.raises(errors.PermanentError, match="answered 404 on /version: Not Found") as err:
            await driver.create(bay, baymodel)
        assert SECRET not in str(err.value)


async def test_a_connection_that_lands_on_loopback_is_discarded(
        default_driver: KubeconfigDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name passed the check, then resolved to loopback for the connection."""
    async def passes(host: str, port: int, policy: object) -> list[object]:
        return []
    monkeypatch.setattr("bayport.drivers.kubeconfig.resolve_permitted", passes)
    async with serve(loopback_service) as url:
        bay, baymodel = registered({"kubeconfig": b64(kubeconfig(url, user={"token": "t"}))})
        with pytest.raises(errors.PermanentError, match=r"connected to 127\.0\.0\.1") as err:
            await default_driver.create(bay, baymodel)
        assert SECRET not in str(err.value)


async def test_operator_placed_kubeconfigs_may_name_private_servers(
        default_driver: KubeconfigDriver) -> None:
    fake = FakeKube(token="secret")
    async with serve(fake.app) as url:
        folder = default_driver.kubeconfig_dir(PROJECT)
        folder.mkdir(parents=True)
        (folder / "site.yaml").write_text(kubeconfig(url, user={"token": "secret"}))
        bay, baymodel = registered({"kubeconfig_path": "site.yaml"})
        assert (await default_driver.create(bay, baymodel)).credentials.server == url
