"""Label and field selectors, parsed once into matchers the store applies to objects.

The store compiles the ``labelSelector``/``fieldSelector`` strings of a list or watch here
(cached, since controllers reuse the same few selectors) and asks ``matches(obj)``; exact
requirements are exposed so the store can use its namespace/name/node indexes instead of scanning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from bayport.cluster.errors import bad_request

_KEY_RE = re.compile(r"^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?/)?"
                     r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class LabelRequirement:
    key: str
    op: str                          # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: frozenset[str]

    def matches(self, labels: dict[str, str]) -> bool:
        op = self.op
        if op == "=":
            return labels.get(self.key) in self.values
        if op == "in":
            return labels.get(self.key) in self.values
        if op in ("!=", "notin"):
            return labels.get(self.key) not in self.values
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        value = labels.get(self.key)
        if value is None:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        bound = int(next(iter(self.values)))
        return number > bound if op == "gt" else number < bound


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[LabelRequirement, ...]

    def matches(self, obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(r.matches(labels) for r in self.requirements)

    def matches_labels(self, labels: dict[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``( … )``."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


_SET_RE = re.compile(r"^(\S+)\s+(in|notin)\s*\((.*)\)$")
_OP_RE = re.compile(r"^([^=!<>\s]+)\s*(==|=|!=|<|>)\s*(.*)$")


def _check_key(key: str, raw: str) -> None:
    if not _KEY_RE.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
        raise bad_request(f'unable to parse requirement: invalid label key "{key}" in "{raw}"')


def _check_value(value: str, raw: str) -> None:
    if len(value) > 63 or not _VALUE_RE.match(value):
        raise bad_request(f'unable to parse requirement: invalid label value: "{value}" in "{raw}"')


def _parse_label_requirement(raw: str) -> LabelRequirement:
    m = _SET_RE.match(raw)
    if m:
        key, op, inner = m.group(1), m.group(2), m.group(3)
        _check_key(key, raw)
        values = [v.strip() for v in inner.split(",")]
        for value in values:
            _check_value(value, raw)
        return LabelRequirement(key, op, frozenset(values))
    if raw.startswith("!"):
        key = raw[1:].strip()
        _check_key(key, raw)
        return LabelRequirement(key, "!", frozenset())
    m = _OP_RE.match(raw)
    if m:
        key, op, value = m.group(1), m.group(2), m.group(3).strip()
        _check_key(key, raw)
        if op in ("<", ">"):
            try:
                int(value)
            except ValueError:
                raise bad_request(f"unable to parse requirement: for 'Gt', 'Lt' operators, the value "
                                  f"must be an integer: {raw}") from None
            return LabelRequirement(key, "gt" if op == ">" else "lt", frozenset([value]))
        _check_value(value, raw)
        return LabelRequirement(key, "!=" if op == "!=" else "=", frozenset([value]))
    _check_key(raw, raw)
    return LabelRequirement(raw, "exists", frozenset())


@lru_cache(maxsize=1024)
def parse_label_selector(text: str | None) -> LabelSelector | None:
    """None for an empty selector (matches everything); ApiError 400 for a malformed one."""
    if not text or not text.strip():
        return None
    return LabelSelector(tuple(_parse_label_requirement(p) for p in _split_top_level(text)))


def selector_from_match_labels(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


# --- field selectors --------------------------------------------------------------------------


def field_value(obj: dict[str, Any], path: str) -> str:
    """The string form Kubernetes compares a field selector against ("" when absent)."""
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return ""
        value = value.get(part)
        if value is None:
            return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return ""
    return str(value)


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    negate: bool
    value: str

    def matches(self, obj: dict[str, Any]) -> bool:
        return (field_value(obj, self.path) == self.value) != self.negate


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...]

    def matches(self, obj: dict[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)

    def exact(self, path: str) -> str | None:
        """The value this selector requires ``path`` to equal, if it has such a requirement."""
        for r in self.requirements:
            if r.path == path and not r.negate:
                return r.value
        return None


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


@lru_cache(maxsize=1024)
def parse_field_selector(text: str | None) -> FieldSelector | None:
    if not text or not text.strip():
        return None
    requirements: list[FieldRequirement] = []
    for part in _split_unescaped(text, ","):
        raw = part.strip()
        if not raw:
            continue
        for op in ("!=", "==", "="):
            idx = raw.find(op)
            if idx > 0:
                path, value = raw[:idx].strip(), raw[idx + len(op):].strip()
                requirements.append(FieldRequirement(path, op == "!=", _unescape(value)))
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{raw}'")
    return FieldSelector(tuple(requirements)) if requirements else None
