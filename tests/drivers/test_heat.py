"""The heat driver against a fake Keystone + Heat over HTTP: what it sends, how it waits,
how it reuses a stack that already exists, and which failures are worth retrying."""

from __future__ import annotations

import asyncio
import base64
import socket
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from pydantic import SecretStr

from bayport import errors
from bayport.config import Settings
from bayport.drivers.heat import HeatDriver
from bayport.drivers.openstack import OpenStackSettings
from bayport.objects.bay import Bay, BayModel
from tests.drivers.conftest import settings_for
from tests.drivers.fake_openstack import FAKE_CA_PEM, FakeOpenStack
from tests.drivers.hot_check import parse_hot

T = TypeVar("T")


def make_baymodel(**overrides: object) -> BayModel:
    values: dict[str, object] = {
        "uuid": str(uuid.uuid4()), "name": "k8s", "driver": "heat", "image_id": "debian-12",
        "flavor_id": "m1.small", "master_flavor_id": "m1.medium", "keypair_id": "ops",
        "external_network_id": "public", "dns_nameserver": "9.9.9.9", "docker_volume_size": 20,
        "labels": {"kube_tag": "v1.31"}, **overrides}
    return BayModel.model_validate(values)


def make_bay(baymodel: BayModel, **overrides: object) -> Bay:
    values: dict[str, object] = {
        "uuid": str(uuid.uuid4()), "name": "testbay", "baymodel_id": baymodel.uuid, "node_count": 2,
        "master_count": 1, "create_timeout": 25, "discovery_url": "https://discovery.etcd.io/abc",
        **overrides}
    return Bay.model_validate(values)


async def retrying(op: Callable[[], Awaitable[T]], attempts: int = 10) -> T:
    """What the conductor does with a driver step: TemporaryError means try again."""
    for _ in range(attempts - 1):
        try:
            return await op()
        except errors.TemporaryError:
            await asyncio.sleep(0.01)
    return await op()


async def test_create_sends_the_cluster_template_and_returns_its_outputs(
        heat: HeatDriver, openstack: FakeOpenStack) -> None:
    baymodel = make_baymodel()
    bay = make_bay(baymodel)

    result = await heat.create(bay, baymodel)

    [post] = openstack.heat_requests("POST")
    assert post.path == f"/heat/v1/{openstack.project_id}/stacks"
    assert post.headers["x-auth-token"] in openstack.tokens
    body = post.body
    assert body["stack_name"] == f"testbay-{bay.uuid[:8]}"
    assert body["timeout_mins"] == 25
    assert body["disable_rollback"] is True
    assert body["parameters"] == {
        "cluster_uuid": bay.uuid, "image_id": "debian-12", "flavor_id": "m1.small",
        "master_flavor_id": "m1.medium", "keypair_id": "ops", "external_network_id": "public",
        "dns_nameserver": "9.9.9.9", "docker_volume_size": 20, "number_of_masters": 1,
        "number_of_minions": 2, "discovery_url": "https://discovery.etcd.io/abc", "kube_version": "v1.31"}
    assert parse_hot(body["template"])["heat_template_version"] == "2018-08-31"
    assert {"kubemaster.yaml", "kubeminion.yaml", "network.yaml", "install-kubeadm.sh"} <= set(body["files"])

    [stack] = openstack.live_stacks()
    assert stack.status == "CREATE_COMPLETE"
    assert stack.shows >= openstack.polls, "the driver returned before Heat finished"
    assert result.stack_id == stack.id
    assert result.api_address == "https://172.24.4.10:6443"
    assert result.master_addresses == ["172.24.4.10"]
    assert result.node_addresses == ["172.24.4.100", "172.24.4.101"]
    assert result.coe_version == "v1.31"
    assert result.credentials.server == result.api_address
    assert result.credentials.token == stack.admin_token
    assert result.credentials.ca_data is not None
    assert base64.b64decode(result.credentials.ca_data).decode() == FAKE_CA_PEM


async def test_create_without_optional_fields_leaves_template_defaults(
        heat: HeatDriver, openstack: FakeOpenStack) -> None:
    baymodel = make_baymodel(flavor_id=None, master_flavor_id=None, dns_nameserver=None,
                             docker_volume_size=None, labels={})
    await heat.create(make_bay(baymodel, discovery_url=None, name=None), baymodel)

    [post] = openstack.heat_requests("POST")
    assert set(post.body["parameters"]) == {"cluster_uuid", "image_id", "keypair_id",
                                            "external_network_id", "number_of_masters",
                                            "number_of_minions"}
    assert post.body["stack_name"].startswith("bay-")


async def test_create_again_reuses_the_stack_found_by_name(
        heat: HeatDriver, openstack: FakeOpenStack, tmp_path: Path) -> None:
    baymodel = make_baymodel()
    bay = make_bay(baymodel)
    first = await heat.create(bay, baymodel)

    # A redelivered message on another conductor: no stack_id recorded yet.
    other = HeatDriver(Settings(data_dir=tmp_path), settings_for(openstack))
    try:
        second = await other.create(bay, baymodel)
    finally:
        await other.close()

    assert len(openstack.heat_requests("POST")) == 1
    assert second.stack_id == first.stack_id
    assert second.credentials.token == first.credentials.token


async def test_a_takeover_resumes_a_stack_still_in_progress(
        heat: HeatDriver, openstack: FakeOpenStack) -> None:
    openstack.polls = 10
    baymodel = make_baymodel()
    bay = make_bay(baymodel)
    first = asyncio.create_task(heat.create(bay, baymodel))
    while not openstack.live_stacks() or openstack.live_stacks()[0].shows < 2:
        await asyncio.sleep(0.005)
    first.cancel()  # the conductor driving it died
    with pytest.raises(asyncio.CancelledError):
        await first
    [stack] = openstack.live_stacks()
    assert stack.status == "CREATE_IN_PROGRESS"

    result = await heat.create(bay, baymodel)

    assert len(openstack.heat_requests("POST")) == 1
    assert result.stack_id == stack.id
    assert stack.status == "CREATE_COMPLETE"


async def test_a_recorded_stack_id_is_looked_up_first(heat: HeatDriver, openstack: FakeOpenStack) -> None:
    baymodel = make_baymodel()
    bay = make_bay(baymodel)
    created = await heat.create(bay, baymodel)
    assert created.stack_id is not None

    renamed = bay.model_copy(update={"name": "renamed", "stack_id": created.stack_id})
    again = await heat.create(renamed, baymodel)

    assert again.stack_id == created.stack_id
    lookups = [r.path for r in openstack.heat_requests("GET")]
    assert lookups[-2].endswith(f"/stacks/{created.stack_id}")


async def test_create_failed_fails_with_heats_reason(heat: HeatDriver, openstack: FakeOpenStack) -> None:
    reason = ('Resource CREATE failed: ResourceInError: resources.kube_master_init.resources.server: '
              'Went to status ERROR due to "Message: No valid host was found. , Code: 500"')
    openstack.create_failure = reason
    baymodel = make_baymodel()

    with pytest.raises(errors.PermanentError) as caught:
        await heat.create(make_bay(baymodel), baymodel)

    assert "CREATE_FAILED" in caught.value.detail
    assert reason in caught.value.detail


async def test_heat_503_is_temporary_and_a_retry_finishes_one_stack(
        heat: HeatDriver, openstack: FakeOpenStack) -> None:
    openstack.unavailable = 3
    baymodel = make_baymodel()
    bay = make_bay(baymodel)

    with pytest.raises(errors.TemporaryError) as caught:
        await heat.create(bay, baymodel)
    assert "503" in caught.value.detail
    result = await retrying(lambda: heat.create(bay, baymodel))

    assert openstack.unavailable == 0
    assert len(openstack.live_stacks()) == 1
    assert result.stack_id == openstack.live_stacks()[0].id


async def test_a_503_while_polling_is_temporary_too(heat: HeatDriver, openstack: FakeOpenStack) -> None:
    openstack.polls = 5
    baymodel = make_baymodel()
    bay = make_bay(baymodel)
    task = asyncio.create_task(heat.create(bay, baymodel))
    while not openstack.live_stacks() or openstack.live_stacks()[0].shows < 2:
        await asyncio.sleep(0.005)
    openstack.unavailable = 1
    with pytest.raises(errors.TemporaryError):
        await task

    result = await retrying(lambda: heat.create(bay, baymodel))
    assert len(openstack.heat_requests("POST")) == 1
    assert result.stack_id == openstack.live_stacks()[0].id


async def test_unreachable_keystone_is_temporary(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = OpenStackSettings.model_validate({
        "auth_url": f"http://127.0.0.1:{port}/v3", "username": "u", "password": SecretStr("p"),
        "project_name": "p", "heat_poll_interval": 0.01})
    driver = HeatDriver(Settings(data_dir=tmp_path), settings)
    baymodel = make_baymodel()
    try:
        with pytest.raises(errors.TemporaryError, match="cannot reach"):
            await driver.create(make_bay(baymodel), baymodel)
    finally:
        await driver.close()


async def test_refused_credentials_are_permanent(openstack: FakeOpenStack, tmp_path: Path) -> None:
    driver = HeatDriver(Settings(data_dir=tmp_path),
                        settings_for(openstack, password=SecretStr("wrong")))
    baymodel = make_baymodel()
    try:
        with pytest.raises(errors.PermanentError, match="refused the credentials of user demo"):
            await driver.create(make_bay(baymodel), baymodel)
    finally:
        await driver.close()
    assert openstack.heat_requests() == []


async def test_an_unconfigured_driver_names_the_missing_settings(tmp_path: Path) -> None:
    driver = HeatDriver(Settings(data_dir=tmp_path), OpenStackSettings.model_validate({}))
    baymodel = make_baymodel()
    with pytest.raises(errors.PermanentError) as caught:
        await driver.create(make_bay(baymodel), baymodel)
    assert "BAYPORT_OS_AUTH_URL" in caught.value.detail
    assert "BAYPORT_OS_PASSWORD" in caught.value.detail
    await driver.close()


async def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAYPORT_OS_AUTH_URL", "https://keystone.example:5000/v3")
    monkeypatch.setenv("BAYPORT_OS_USERNAME", "bayport")
    monkeypatch.setenv("BAYPORT_OS_PASSWORD", "s3cret")
    monkeypatch.setenv("BAYPORT_OS_PROJECT_NAME", "service")
    monkeypatch.setenv("BAYPORT_OS_REGION_NAME", "RegionTwo")
    settings = OpenStackSettings()
    assert settings.missing() == []
    assert (settings.user_domain_name, settings.project_domain_name) == ("Default", "Default")
    assert settings.region_name == "RegionTwo"
    assert settings.password is not None and settings.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


async def test_an_incomplete_baymodel_fails_before_calling_heat(
        heat: HeatDriver, openstack: FakeOpenStack) -> None:
    baymodel = make_baymodel(image_id=None, external_network_id=None)
    with pytest.raises(errors.PermanentError, match="image_id, external_network_id"):
        await heat.create(make_bay(baymodel), baymodel)
    half_network = make_baymodel(fixed_network="private")
    with pytest.raises(errors.PermanentError, match="fixed_network and fixed_subnet"):
        await heat.create(make_bay(half_network), half_network)
    assert openstack.requests == []


async def test_an_existing_network_is_passed_through(heat: HeatDriver, openstack: FakeOpenStack) -> None:
    baymodel = make_baymodel(fixed_network="net-1", fixed_subnet="subnet-1")
    await heat.create(make_bay(baymodel), baymodel)
    [post] = openstack.heat_requests("POST")
    assert post.body["parameters"]["fixed_network"] == "net-1"
    assert post.body["parameters"]["fixed_subnet"] == "subnet-1"


async def test_resize_patches_only_the_minion_count(heat: HeatDriver, openstack: FakeOpenStack) -> None:
    baymodel = make_baymodel()
    bay = make_bay(baymodel)
    created = await heat.create(bay, baymodel)
    bay = bay.model_copy(update={"stack_id": created.stack_id})

    result = await heat.resize(bay, baymodel, 4)

    [patch] = openstack.heat_requests("PATCH")
    assert patch.path == f"/heat/v1/{openstack.project_id}/stacks/testbay-{bay.uuid[:8]}/{created.stack_id}"
    assert patch.body == {"parameters": {"number_of_minions": 4}, "timeout_mins": 25}
    [stack] = openstack.live_stacks()
    assert stack.status == "UPDATE_COMPLETE"
    assert result.node_addresses == [f"172.24.4.{100 + i}" for i in range(4)]
    assert result.credentials.token == created.credentials.token

    again = await heat.resize(bay, baymodel, 4)
    assert len(openstack.heat_requests("PATCH")) == 1, "resizing to the current size changed nothing"
    assert again.node_addresses == result.node_addresses


async def test_resize_does_not_believe_the_state_heat_showed_before_the_patch(
        heat: HeatDriver, openstack: FakeOpenStack) -> None:
    baymodel = make_baymodel()
    bay = make_bay(baymodel)
    await heat.create(bay, baymodel)
    openstack.update_failure = "Resource UPDATE failed: quota exceeded for instances"
    with pytest.raises(errors.PermanentError, match="UPDATE_FAILED: Resource UPDATE failed: quota"):
        await heat.resize(bay, baymodel, 5)

    # Retrying the resize, Heat still shows the old UPDATE_FAILED for a couple of looks.
    openstack.update_failure = None
    openstack.stale_looks = 2
    result = await heat.resize(bay, baymodel, 5)

    assert len(openstack.heat_requests("PATCH")) == 2
    assert openstack.live_stacks()[0].status == "UPDATE_COMPLETE"
    assert len(result.node_addresses) == 5


async def test_resize_of_a_bay_without_stack_is_permanent(heat: HeatDriver) -> None:
    baymodel = make_baymodel()
    with pytest.raises(errors.PermanentError, match="no Heat stack to resize"):
        await heat.resize(make_bay(baymodel), baymodel, 3)


async def test_delete_waits_until_heat_forgets_the_stack(heat: HeatDriver, openstack: FakeOpenStack) -> None:
    baymodel = make_baymodel()
    bay = make_bay(baymodel)
    await heat.create(bay, baymodel)
    [stack] = openstack.live_stacks()

    await heat.delete(bay, baymodel)

    assert stack.deleted and stack.status == "DELETE_COMPLETE"
    assert [r.path for r in openstack.heat_requests("DELETE")] == [
        f"/heat/v1/{openstack.project_id}/stacks/{stack.name}/{stack.id}"]
    await heat.delete(bay, baymodel)
    assert len(openstack.heat_requests("DELETE")) == 1, "deleting what is gone asks Heat nothing"


async def test_delete_sees_delete_complete_when_heat_shows_deleted_stacks(
        heat: HeatDriver, openstack: FakeOpenStack) -> None:
    openstack.deleted_visible = True
    openstack.stale_looks = 1
    baymodel = make_baymodel()
    bay = make_bay(baymodel)
    created = await heat.create(bay, baymodel)
    await heat.delete(bay.model_copy(update={"stack_id": created.stack_id}), baymodel)
    assert openstack.stacks[str(created.stack_id)].status == "DELETE_COMPLETE"


async def test_delete_failed_carries_the_reason_and_a_retry_deletes(
        heat: HeatDriver, openstack: FakeOpenStack) -> None:
    reason = "Resource DELETE failed: Conflict: Port 5b1e is still in use"
    openstack.delete_failures = [reason]
    baymodel = make_baymodel()
    bay = make_bay(baymodel)
    await heat.create(bay, baymodel)

    with pytest.raises(errors.PermanentError) as caught:
        await heat.delete(bay, baymodel)
    assert f"DELETE_FAILED: {reason}" in caught.value.detail

    openstack.stale_looks = 2
    await heat.delete(bay, baymodel)
    assert openstack.live_stacks() == []
    assert len(openstack.heat_requests("DELETE")) == 2


async def test_delete_of_a_bay_that_never_got_a_stack_succeeds(
        heat: HeatDriver, openstack: FakeOpenStack) -> None:
    baymodel = make_baymodel()
    await heat.delete(make_bay(baymodel, stack_id=str(uuid.uuid4())), baymodel)
    assert openstack.heat_requests("DELETE") == []


async def test_a_refused_token_is_renewed_once(heat: HeatDriver, openstack: FakeOpenStack) -> None:
    baymodel = make_baymodel()
    bay = make_bay(baymodel)
    await heat.create(bay, baymodel)
    assert openstack.auth_count == 1

    openstack.revoke_tokens()
    await heat.resize(bay, baymodel, 1)

    assert openstack.auth_count == 2
    assert openstack.live_stacks()[0].status == "UPDATE_COMPLETE"


async def test_health_follows_the_stack(heat: HeatDriver, openstack: FakeOpenStack) -> None:
    baymodel = make_baymodel()
    bay = make_bay(baymodel)
    assert await heat.health(bay, baymodel) == "UNHEALTHY"
    await heat.create(bay, baymodel)
    assert await heat.health(bay, baymodel) == "HEALTHY"
    openstack.unavailable = 1
    assert await heat.health(bay, baymodel) == "UNKNOWN"
    openstack.update_failure = "broken"
    with pytest.raises(errors.PermanentError):
        await heat.resize(bay, baymodel, 3)
    assert await heat.health(bay, baymodel) == "UNHEALTHY"
