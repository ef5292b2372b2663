"""Protocol Buffers wire primitives: varints, field tags, and a reader over one message's fields.

``codec`` drives these from the schema table; nothing here knows a Kubernetes type. Every
malformed input raises ``ProtobufError`` (the HTTP layer answers it with a 400), never an
IndexError or a struct.error.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
_MASK64 = (1 << 64) - 1


class ProtobufError(ValueError):
    """The bytes are not a valid protobuf message of the expected type."""


def varint(value: int) -> bytes:
    """``value`` as a base-128 varint; negative numbers as their 64-bit two's complement (int32/int64)."""
    value &= _MASK64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it); at most ten bytes, as the format allows."""
    result = shift = 0
    end = min(len(data), pos + 10)
    while pos < end:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & _MASK64, pos
        shift += 7
    raise ProtobufError("truncated or overlong varint")


def signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def length_field(number: int, payload: bytes) -> bytes:
    return tag(number, LENGTH) + varint(len(payload)) + payload


def varint_field(number: int, value: int) -> bytes:
    return tag(number, VARINT) + varint(value)


def double_field(number: int, value: float) -> bytes:
    return tag(number, FIXED64) + struct.pack("<d", value)


def fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Each (field number, wire type, value) of one message: an int for varint and fixed
    fields, the payload bytes for length-delimited ones. Groups (wire types 3 and 4) are refused:
    no Kubernetes type has them."""
    pos, size = 0, len(data)
    while pos < size:
        key, pos = read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("field number 0 is invalid")
        value: int | bytes
        if wire_type == VARINT:
            value, pos = read_varint(data, pos)
        elif wire_type == LENGTH:
            length, pos = read_varint(data, pos)
            if pos + length > size:
                raise ProtobufError(f"field {number}: length {length} runs past the end of the message")
            value, pos = data[pos:pos + length], pos + length
        elif wire_type in (FIXED64, FIXED32):
            width = 8 if wire_type == FIXED64 else 4
            if pos + width > size:
                raise ProtobufError(f"field {number}: truncated fixed-width value")
            value = int.from_bytes(data[pos:pos + width], "little")
            pos += width
        else:
            raise ProtobufError(f"field {number}: unsupported wire type {wire_type}")
        yield number, wire_type, value


def unpack_double(bits: int) -> float:
    value: float = struct.unpack("<d", bits.to_bytes(8, "little"))[0]
    return value
