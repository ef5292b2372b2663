"""Driver lookup by the baymodel's ``driver`` field; one instance per conductor process."""

from __future__ import annotations

from bayport import errors
from bayport.config import Settings
from bayport.drivers.base import Driver


class DriverRegistry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._drivers: dict[str, Driver] = {}

    def get(self, name: str) -> Driver:
        driver = self._drivers.get(name)
        if driver is None:
            driver = self._drivers[name] = self._build(name)
        return driver

    def _build(self, name: str) -> Driver:
        if name == "local":
            from bayport.drivers.local import LocalDriver

            return LocalDriver(self.settings)
        if name == "kubeconfig":
            from bayport.drivers.kubeconfig import KubeconfigDriver

            return KubeconfigDriver(self.settings)
        if name == "heat":
            from bayport.drivers.heat import HeatDriver

            return HeatDriver(self.settings)
        raise errors.PermanentError(f"no driver named {name!r}")

    async def close(self) -> None:
        for driver in self._drivers.values():
            await driver.close()
        self._drivers.clear()
