"""Fixtures of the driver tests: a fake OpenStack over real HTTP and a heat driver aimed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bayport.config import Settings
from bayport.drivers.heat import HeatDriver
from bayport.drivers.openstack import OpenStackSettings
from tests.drivers.fake_openstack import FakeOpenStack
from tests.drivers.serve import serve

POLL = 0.01


@pytest.fixture
async def openstack() -> AsyncIterator[FakeOpenStack]:
    fake = FakeOpenStack()
    async with serve(fake.app) as url:
        fake.url = url
        yield fake


def settings_for(fake: FakeOpenStack, **overrides: object) -> OpenStackSettings:
    values: dict[str, object] = {
        "auth_url": f"{fake.url}/v3", "username": fake.username,
        "password": SecretStr(fake.password), "project_name": fake.project_name,
        "region_name": fake.region, "heat_poll_interval": POLL, "request_timeout": 5.0,
        **overrides}
    return OpenStackSettings.model_validate(values)


@pytest.fixture
async def heat(openstack: FakeOpenStack, tmp_path: Path) -> AsyncIterator[HeatDriver]:
    driver = HeatDriver(Settings(data_dir=tmp_path), settings_for(openstack))
    yield driver
    await driver.close()
