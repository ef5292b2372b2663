"""Small statistics helpers shared by the benchmarks (median, p99, a printed line)."""

from __future__ import annotations

import statistics


def percentile(samples: list[float], pct: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    k = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(label: str, samples_s: list[float], *, unit: str = "ms") -> str:
    """One line: count, median and p99 of latencies given in seconds."""
    scale = 1000.0 if unit == "ms" else 1.0
    med = statistics.median(samples_s) * scale if samples_s else float("nan")
    p99 = percentile(samples_s, 99) * scale
    line = f"{label}: n={len(samples_s)} median={med:.2f} {unit} p99={p99:.2f} {unit}"
    print(line)
    return line


def rate(label: str, count: int, seconds: float, *, anchor: float | None = None,
         anchor_name: str = "") -> str:
    per_s = count / seconds if seconds > 0 else float("inf")
    line = f"{label}: {per_s:,.0f}/s ({count} in {seconds:.2f} s)"
    if anchor:
        line += f"  ratio to {anchor_name} {per_s / anchor:.1f}x"
    print(line)
    return line
