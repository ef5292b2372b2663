"""``make bench``: run every benchmark module in bench/ in turn and print its figures.

A module takes part by defining ``async def main() -> None`` (or a plain ``main``).
``python -m bench NAME ...`` runs only the named modules.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
import sys
import time
import traceback
from pathlib import Path


def _modules() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)])
                  if m.name.startswith("bench_"))


def run(names: list[str]) -> int:
    failed = 0
    for name in names or _modules():
        mod = importlib.import_module(f"bench.{name}")
        print(f"\n=== {name}: {(mod.__doc__ or '').strip().splitlines()[0] if mod.__doc__ else ''}")
        started = time.perf_counter()
        try:
            result = mod.main()
            if inspect.iscoroutine(result):
                asyncio.run(result)
        except Exception:  # a broken benchmark is reported, never fatal to the others
            failed += 1
            traceback.print_exc()
        print(f"--- {name} took {time.perf_counter() - started:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
