"""Imports every table module so that Base.metadata is complete (Alembic, create_all)."""

from __future__ import annotations

import importlib
import pkgutil

import bayport.db as _db

_TABLE_MODULES = ("models", "network", "workloads", "jobs", "quotas", "events")

for _name in _TABLE_MODULES:
    if any(m.name == _name for m in pkgutil.iter_modules(_db.__path__)):
        importlib.import_module(f"bayport.db.{_name}")
