"""Kubernetes objects ⇄ ``application/vnd.kubernetes.protobuf``, driven by ``schema.json``.

A body is the 4-byte magic ``k8s\\x00`` then a ``runtime.Unknown`` (TypeMeta apiVersion/kind,
the raw message, contentEncoding, contentType). ``decode`` turns one into the JSON-shaped dict
the rest of the server handles, as Go's decoder followed by its JSON encoder would: a plain
field's zero value is dropped (Go cannot tell it from "unset"), a pointer field's is kept
(``replicas: 0``, ``emptyDir: {}``), inline structs are merged into their parent, and the
apimachinery leaf types (Time, Quantity, IntOrString, RawExtension, FieldsV1) become their JSON
forms. ``encode`` is the inverse for responses. Field numbers and types come from the Kubernetes
``generated.proto`` files through ``generate``; unknown fields are skipped, not fatal.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson

from bayport.cluster.http.protobuf.wire import (
    FIXED64,
    LENGTH,
    VARINT,
    ProtobufError,
    double_field,
    fields,
    length_field,
    read_varint,
    signed64,
    unpack_double,
    varint,
    varint_field,
)

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"

_META = "k8s.io.apimachinery.pkg.apis.meta.v1."
TIME, MICRO_TIME, FIELDS_V1 = _META + "Time", _META + "MicroTime", _META + "FieldsV1"
QUANTITY = "k8s.io.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
RAW_EXTENSION = "k8s.io.apimachinery.pkg.runtime.RawExtension"
_NUMERIC = frozenset({"int32", "int64", "uint32", "uint64", "bool", "double"})
_FRACTION = re.compile(r"\.(\d+)")
_MAX_DEPTH = 64          # nested envelopes/messages; deeper input is refused, not a RecursionError


class NotEncodable(Exception):
    """The object has no protobuf form here (unknown kind, or a value of the wrong type); the
    caller answers in JSON instead."""


@dataclass(frozen=True, slots=True)
class Field:
    number: int
    json: str                # "" for a struct embedded inline in JSON
    label: str               # "optional" | "repeated" | "map"
    type: str                # a scalar name or a message's full proto name (a map's value type)
    keep: bool               # a Go pointer: its zero value is meaningful
    where: str               # "PodSpec.containers", for error messages


@dataclass(frozen=True, slots=True)
class Message:
    name: str
    by_number: dict[int, Field]
    by_json: dict[str, Field]
    inline: tuple[Field, ...]


def _load() -> tuple[dict[str, Message], dict[str, str]]:
    raw = json.loads(resources.files(__package__).joinpath("schema.json").read_text())
    messages: dict[str, Message] = {}
    for name, rows in raw["messages"].items():
        short = name.rsplit(".", 1)[-1]
        flist = [Field(int(n), j, lab, t, "keep" in flags.split(), f"{short}.{j or t.rsplit('.', 1)[-1]}")
                 for n, j, lab, t, flags in rows]
        messages[name] = Message(name, {f.number: f for f in flist}, {f.json: f for f in flist if f.json},
                                 tuple(f for f in flist if not f.json))
    return messages, dict(raw["kinds"])


MESSAGES, KINDS = _load()


def message_for(api_version: str, kind: str) -> str | None:
    return KINDS.get(f"{api_version}/{kind}")


# --- decoding ---------------------------------------------------------------------------------

def decode(data: bytes) -> dict[str, Any]:
    """A protobuf request body → its JSON-shaped object (with apiVersion and kind)."""
    try:
        return _decode_envelope(data, 0)
    except RecursionError:
        raise ProtobufError("the message is nested too deeply") from None


def _decode_envelope(data: bytes, depth: int) -> dict[str, Any]:
    if not data.startswith(MAGIC):
        raise ProtobufError("the body does not start with the protobuf prefix k8s\\x00")
    api_version = kind = encoding = ""
    raw = b""
    for number, _, value in fields(data[len(MAGIC):]):
        if number == 1 and isinstance(value, bytes):
            for n, _, v in fields(value):
                if n in (1, 2) and isinstance(v, bytes):
                    text = _text(v, "typeMeta")
                    api_version, kind = (text, kind) if n == 1 else (api_version, text)
        elif number == 2 and isinstance(value, bytes):
            raw = value
        elif number == 3 and isinstance(value, bytes):
            encoding = _text(value, "contentEncoding")
    if encoding:
        raise ProtobufError(f"unsupported contentEncoding {encoding!r}")
    if not kind:
        raise ProtobufError("the envelope has no kind")
    name = message_for(api_version, kind)
    if name is None:
        raise ProtobufError(f'no kind "{kind}" is registered for version "{api_version}"')
    body = _decode_message(MESSAGES[name], raw, depth + 1)
    return {"apiVersion": api_version, "kind": kind, **body}


def _text(value: bytes, where: str) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise ProtobufError(f"{where}: a string field is not valid UTF-8") from None


def _decode_message(msg: Message, data: bytes, depth: int) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise ProtobufError("the message is nested too deeply")
    out: dict[str, Any] = {}
    for number, wire_type, value in fields(data):
        f = msg.by_number.get(number)
        if f is None:
            continue                                   # a field newer than this schema
        where = f.where
        if f.label == "map":
            if not isinstance(value, bytes):
                raise ProtobufError(f"{where}: a map entry must be length-delimited")
            key, item = _decode_entry(f, value, depth, where)
            out.setdefault(f.json, {})[key] = item
            continue
        if f.label == "repeated" and f.type in _NUMERIC and isinstance(value, bytes):
            out.setdefault(f.json, []).extend(_packed(f.type, value, where))
            continue
        decoded = _decode_value(f.type, wire_type, value, depth, where)
        if f.label == "repeated":
            out.setdefault(f.json, []).append(decoded)
        elif not f.json:
            if isinstance(decoded, dict):
                out.update(decoded)
        elif decoded is None or (not f.keep and not decoded):
            out.pop(f.json, None)
        else:
            out[f.json] = decoded
    return out


def _decode_entry(f: Field, data: bytes, depth: int, where: str) -> tuple[str, Any]:
    key, item = "", None
    for number, wire_type, value in fields(data):
        if number == 1:
            key = _decode_value("string", wire_type, value, depth, where)
        elif number == 2:
            item = _decode_value(f.type, wire_type, value, depth, where)
    if item is None:
        item = "" if f.type == "string" else _decode_value(f.type, LENGTH, b"", depth, where)
    return key, item


def _packed(ptype: str, data: bytes, where: str) -> list[Any]:
    values: list[Any] = []
    pos = 0
    while pos < len(data):
        if ptype == "double":
            if pos + 8 > len(data):
                raise ProtobufError(f"{where}: truncated packed double")
            values.append(unpack_double(int.from_bytes(data[pos:pos + 8], "little")))
            pos += 8
            continue
        raw, pos = read_varint(data, pos)
        values.append(_scalar(ptype, VARINT, raw, where))
    return values


def _scalar(ptype: str, wire_type: int, value: int | bytes, where: str) -> Any:
    if ptype == "string":
        if not isinstance(value, bytes):
            raise ProtobufError(f"{where}: expected a string, got wire type {wire_type}")
        return _text(value, where)
    if ptype == "bytes":
        if not isinstance(value, bytes):
            raise ProtobufError(f"{where}: expected bytes, got wire type {wire_type}")
        return base64.b64encode(value).decode()
    if ptype == "double":
        if wire_type != FIXED64 or not isinstance(value, int):
            raise ProtobufError(f"{where}: expected a double, got wire type {wire_type}")
        return unpack_double(value)
    if wire_type != VARINT or not isinstance(value, int):
        raise ProtobufError(f"{where}: expected a varint, got wire type {wire_type}")
    if ptype == "bool":
        return value != 0
    if ptype == "int32":
        return (signed64(value) + (1 << 31)) % (1 << 32) - (1 << 31)
    return signed64(value) if ptype == "int64" else value


def _decode_value(ptype: str, wire_type: int, value: int | bytes, depth: int, where: str) -> Any:
    if ptype not in MESSAGES:
        return _scalar(ptype, wire_type, value, where)
    if not isinstance(value, bytes):
        raise ProtobufError(f"{where}: expected a message, got wire type {wire_type}")
    if ptype in _LEAVES:
        return _LEAVES[ptype](value, depth, where)
    return _decode_message(MESSAGES[ptype], value, depth + 1)


def _numbers(data: bytes, where: str) -> dict[int, int | bytes]:
    return {n: v for n, _, v in fields(data)}


def _decode_time(data: bytes, depth: int, where: str, *, micro: bool = False) -> str | None:
    parts = _numbers(data, where)
    seconds, nanos = parts.get(1, 0), parts.get(2, 0)
    if not isinstance(seconds, int) or not isinstance(nanos, int):
        raise ProtobufError(f"{where}: a timestamp's seconds and nanos are varints")
    if seconds == 0 and nanos == 0:
        return None                                    # Go's zero time: null in JSON
    try:
        moment = datetime.datetime.fromtimestamp(signed64(seconds), datetime.UTC)
    except (OverflowError, OSError, ValueError):
        raise ProtobufError(f"{where}: timestamp out of range") from None
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{(signed64(nanos) // 1000) % 1_000_000:06d}Z" if micro else f"{text}Z"


def _decode_quantity(data: bytes, depth: int, where: str) -> str:
    value = _numbers(data, where).get(1, b"")
    return _text(value, where) if isinstance(value, bytes) else ""


def _decode_int_or_string(data: bytes, depth: int, where: str) -> int | str:
    parts = _numbers(data, where)
    if parts.get(1, 0) == 1:
        text = parts.get(3, b"")
        return _text(text, where) if isinstance(text, bytes) else ""
    number = parts.get(2, 0)
    return int(_scalar("int32", VARINT, number, where)) if isinstance(number, int) else 0


def _decode_raw(data: bytes, depth: int, where: str) -> Any:
    raw = _numbers(data, where).get(1, b"")
    if not isinstance(raw, bytes) or not raw:
        return None
    if raw.startswith(MAGIC):
        return _decode_envelope(raw, depth + 1)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ProtobufError(f"{where}: an embedded object is neither protobuf nor JSON") from None


def _decode_fields_v1(data: bytes, depth: int, where: str) -> Any:
    raw = _numbers(data, where).get(1, b"")
    try:
        return orjson.loads(raw) if isinstance(raw, bytes) and raw else None
    except orjson.JSONDecodeError:
        raise ProtobufError(f"{where}: fieldsV1 is not JSON") from None


def _decode_micro_time(data: bytes, depth: int, where: str) -> str | None:
    return _decode_time(data, depth, where, micro=True)


_LEAVES: dict[str, Callable[[bytes, int, str], Any]] = {
    TIME: _decode_time,
    MICRO_TIME: _decode_micro_time,
    QUANTITY: _decode_quantity,
    INT_OR_STRING: _decode_int_or_string,
    RAW_EXTENSION: _decode_raw,
    FIELDS_V1: _decode_fields_v1,
}


# --- encoding ---------------------------------------------------------------------------------

def encode(obj: dict[str, Any]) -> bytes:
    """A JSON-shaped object (with apiVersion and kind) → the protobuf envelope; NotEncodable when
    its kind has no message here or a value cannot take its field's type."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    name = message_for(str(api_version), str(kind))
    if name is None:
        raise NotEncodable(f"no protobuf message for {api_version}/{kind}")
    type_meta = length_field(1, str(api_version).encode()) + length_field(2, str(kind).encode())
    return MAGIC + length_field(1, type_meta) + length_field(2, _encode_message(MESSAGES[name], obj))


def _encode_message(msg: Message, obj: Any) -> bytes:
    if not isinstance(obj, dict):
        raise NotEncodable(f"{msg.name}: expected an object, got {type(obj).__name__}")
    out = bytearray()
    for embedded in msg.inline:
        out += length_field(embedded.number, _encode_message(MESSAGES[embedded.type], obj))
    for key, value in obj.items():
        f = msg.by_json.get(key)
        if f is None or value is None:
            continue                      # unknown to protobuf (an inline struct's, or Go drops it)
        if f.label == "map":
            if not isinstance(value, dict):
                raise NotEncodable(f"{msg.name}.{f.json}: expected a map")
            for map_key, item in value.items():
                entry = length_field(1, str(map_key).encode())
                if item is not None:
                    entry += _encode_value(2, f.type, item)
                out += length_field(f.number, entry)
        elif f.label == "repeated":
            if not isinstance(value, list):
                raise NotEncodable(f"{msg.name}.{f.json}: expected a list")
            for item in value:
                out += _encode_value(f.number, f.type, item)
        else:
            out += _encode_value(f.number, f.type, value)
    return bytes(out)


def _encode_value(number: int, ptype: str, value: Any) -> bytes:
    if ptype in MESSAGES:
        leaf = _ENCODE_LEAVES.get(ptype)
        return length_field(number, leaf(value) if leaf else _encode_message(MESSAGES[ptype], value))
    if ptype == "string":
        if isinstance(value, (dict, list)):
            raise NotEncodable(f"field {number}: expected a string")
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        return length_field(number, text.encode())
    if ptype == "bytes":
        try:
            return length_field(number, base64.b64decode(value, validate=True))
        except (ValueError, TypeError):
            raise NotEncodable(f"field {number}: expected base64 bytes") from None
    if ptype == "bool":
        if not isinstance(value, bool):
            raise NotEncodable(f"field {number}: expected a boolean")
        return varint_field(number, int(value))
    if ptype == "double":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise NotEncodable(f"field {number}: expected a number")
        return double_field(number, float(value))
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise NotEncodable(f"field {number}: expected an integer")
    try:
        return varint_field(number, int(value))
    except ValueError:
        raise NotEncodable(f"field {number}: expected an integer") from None


def _encode_time(value: Any) -> bytes:
    if not isinstance(value, str):
        raise NotEncodable("a timestamp must be an RFC 3339 string")
    nanos = 0
    fraction = _FRACTION.search(value)
    if fraction:
        nanos = int(fraction.group(1)[:9].ljust(9, "0"))
        value = value[:fraction.start()] + value[fraction.end():]
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise NotEncodable(f"not an RFC 3339 time: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    out = varint_field(1, int(moment.timestamp()))
    return out + varint_field(2, nanos) if nanos else out


def _encode_quantity(value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise NotEncodable("a quantity must be a string or a number")
    return length_field(1, str(value).encode())


def _encode_int_or_string(value: Any) -> bytes:
    if isinstance(value, str):
        return varint_field(1, 1) + length_field(3, value.encode())
    if isinstance(value, int) and not isinstance(value, bool):
        return varint_field(1, 0) + varint_field(2, value)
    raise NotEncodable("an int-or-string must be an integer or a string")


def _encode_raw(value: Any) -> bytes:
    """An embedded object: protobuf when its kind has a message here (as the API server writes
    list items and watch objects), JSON otherwise."""
    if isinstance(value, dict) and message_for(str(value.get("apiVersion")), str(value.get("kind"))):
        return length_field(1, encode(value))
    return length_field(1, orjson.dumps(value))


def _encode_fields_v1(value: Any) -> bytes:
    return length_field(1, orjson.dumps(value))


_ENCODE_LEAVES: dict[str, Callable[[Any], bytes]] = {
    TIME: _encode_time,
    MICRO_TIME: _encode_time,
    QUANTITY: _encode_quantity,
    INT_OR_STRING: _encode_int_or_string,
    RAW_EXTENSION: _encode_raw,
    FIELDS_V1: _encode_fields_v1,
}


def watch_frame(event_type: str, obj: dict[str, Any]) -> bytes:
    """One event of a ``;stream=watch`` protobuf response: a 4-byte big-endian length, then a
    bare ``WatchEvent`` message (no envelope) whose object is an enveloped object."""
    event = length_field(1, event_type.encode()) + length_field(2, _encode_raw(obj))
    return len(event).to_bytes(4, "big") + event


__all__ = ["MEDIA_TYPE", "NotEncodable", "ProtobufError", "decode", "encode", "varint", "watch_frame"]
