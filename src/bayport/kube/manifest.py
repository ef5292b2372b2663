"""Manifest text → one Kubernetes object as a plain dict, or a 400 that says where it broke.

YAML (or JSON) as users send it in ``manifest``: the error names the line and column from
the parser's mark. Timestamps stay strings (as in Kubernetes' YAML → JSON decoding), the
text must hold exactly one mapping, and it is bounded in size. The result goes on to
``convert`` (old API versions) and ``validate`` (required fields).
"""

from __future__ import annotations

from typing import Any

import orjson
import yaml

from bayport import errors

# The largest manifest Bayport accepts, inline or from a URL (the 1 MiB bound).
MAX_MANIFEST_BYTES = 1024 * 1024


# libyaml's parser when PyYAML was built with it: ten times faster on a typical manifest.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """A safe loader whose scalars resolve as Kubernetes resolves them: no timestamp type."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}


def _where(mark: yaml.Mark | None) -> str:
    if mark is None:
        return ""
    return f" at line {mark.line + 1}, column {mark.column + 1}"


def _yaml_error(exc: yaml.YAMLError) -> errors.InvalidManifest:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        return errors.InvalidManifest(f"manifest is not valid YAML{_where(mark)}: {problem}",
                                      field="manifest", line=line, column=column)
    return errors.InvalidManifest(f"manifest is not valid YAML: {exc}", field="manifest")


def parse_manifest(text: str, *, field: str = "manifest") -> dict[str, Any]:
    """The single object in ``text``; InvalidManifest naming line and column otherwise."""
    if len(text.encode()) > MAX_MANIFEST_BYTES:
        raise errors.InvalidManifest(f"manifest is larger than {MAX_MANIFEST_BYTES} bytes", field=field)
    if not text.strip():
        raise errors.InvalidManifest("manifest is empty", field=field)
    if text.lstrip().startswith("{"):
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise errors.InvalidManifest(
                f"manifest is not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                field=field, line=exc.lineno, column=exc.colno) from exc
        return _one_mapping(doc, field)
    try:
        docs = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError as exc:
        raise _yaml_error(exc) from exc
    if len(docs) != 1:
        raise errors.InvalidManifest(
            f"manifest must hold exactly one object, found {len(docs)} YAML documents", field=field)
    return _one_mapping(docs[0], field)


def _one_mapping(doc: Any, field: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise errors.InvalidManifest(
            f"manifest must be a mapping (an object with apiVersion, kind, metadata, spec), "
            f"not a {type(doc).__name__}", field=field)
    bad = [k for k in doc if not isinstance(k, str)]
    if bad:
        raise errors.InvalidManifest(f"manifest keys must be strings, not {bad[0]!r}", field=field)
    return doc
