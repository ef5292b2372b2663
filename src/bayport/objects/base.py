"""The versioned-object base every domain object derives from.

An object remembers which fields were set since it was loaded or last reset,
so the RPC payload names its changes (``bayport_object.changes``) exactly as
Magnum's ``magnum_object.changes`` did, and a conductor can persist only what
changed. ``to_primitive``/``from_primitive`` are the wire format of DESIGN.md.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, PrivateAttr

from bayport import errors

NAMESPACE = "bayport"
_REGISTRY: dict[str, type[BayportObject]] = {}


class BayportObject(BaseModel):
    """A domain object with a name and version on the wire and tracked changes."""

    model_config = ConfigDict(validate_assignment=True, extra="ignore")

    OBJ_NAME: ClassVar[str] = ""
    VERSION: ClassVar[str] = "1.0"

    _changes: set[str] = PrivateAttr(default_factory=set)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.OBJ_NAME:
            _REGISTRY[cls.OBJ_NAME] = cls

    def model_post_init(self, context: Any) -> None:
        # Fields given at construction are changes: a new object is all changes.
        self._changes = set(self.model_fields_set)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in type(self).model_fields:
            self._changes.add(name)

    def obj_what_changed(self) -> set[str]:
        return set(self._changes)

    def obj_reset_changes(self) -> None:
        self._changes.clear()

    def changed_values(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in sorted(self._changes)}

    def to_primitive(self) -> dict[str, Any]:
        """The wire form: name, namespace, version, data and the list of changes."""
        return {
            f"{NAMESPACE}_object.name": self.OBJ_NAME,
            f"{NAMESPACE}_object.namespace": NAMESPACE,
            f"{NAMESPACE}_object.version": self.VERSION,
            f"{NAMESPACE}_object.data": self.model_dump(mode="json", include=None),
            f"{NAMESPACE}_object.changes": sorted(self._changes),
        }

    @classmethod
    def loaded(cls, **data: Any) -> Self:
        """An object read from storage: no field counts as changed."""
        obj = cls(**data)
        obj.obj_reset_changes()
        return obj


def is_primitive_object(value: Any) -> bool:
    return isinstance(value, dict) and f"{NAMESPACE}_object.name" in value


def from_primitive(value: dict[str, Any]) -> BayportObject:
    """Rebuild an object from its wire form; an unknown name or newer major version is refused."""
    name = value.get(f"{NAMESPACE}_object.name")
    cls = _REGISTRY.get(str(name))
    if cls is None:
        raise errors.InvalidInput(f"unknown object type {name!r} on the bus")
    version = str(value.get(f"{NAMESPACE}_object.version", "1.0"))
    if version.split(".", maxsplit=1)[0] != cls.VERSION.split(".")[0]:
        raise errors.InvalidInput(
            f"{name} version {version} is incompatible with this process's {cls.VERSION}")
    obj = cls.model_validate(value.get(f"{NAMESPACE}_object.data") or {})
    obj._changes = set(value.get(f"{NAMESPACE}_object.changes") or [])
    return obj


def registered_objects() -> dict[str, type[BayportObject]]:
    return dict(_REGISTRY)
