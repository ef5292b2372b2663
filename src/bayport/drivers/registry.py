"""Driver lookup by the baymodel's ``driver`` field; one instance per conductor process."""

from __future__ import annotations

from bayport import errors
from bayport.config import Settings
from bayport.drivers.base import Driver


def driver_class(name: str) -> type[Driver]:
    """The class of the driver ``name``, imported on first use (each pulls in its own stack)."""
    if name == "local":
        from bayport.drivers.local import LocalDriver

        return LocalDriver
    if name == "kubeconfig":
        from bayport.drivers.kubeconfig import KubeconfigDriver

        return KubeconfigDriver
    if name == "heat":
        from bayport.drivers.heat import HeatDriver

        return HeatDriver
    raise errors.PermanentError(f"no driver named {name!r}")


def check_node_count(driver: str, *, masters: int, nodes: int) -> None:
    """A 400 naming ``node_count`` when the driver cannot host that many nodes in one bay."""
    limit = driver_class(driver).max_nodes
    if limit is not None and masters + nodes > limit:
        raise errors.InvalidInput(
            f"node_count: the {driver} driver hosts at most {limit} nodes in a bay, masters "
            f"included; {masters} masters and {nodes} nodes were asked for", field="node_count")


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
        return driver_class(name)(self.settings)

    async def close(self) -> None:
        for driver in self._drivers.values():
            await driver.close()
        self._drivers.clear()
