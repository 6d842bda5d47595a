"""The Kubernetes protobuf encoding for the small documents built in Python: `Status` errors and
discovery. (Metrics objects are encoded in Rust, `render/protobuf.rs`.)

Like the gogo-generated Go marshallers, every non-pointer field is written even when empty, in
field-number order; callers build messages with these helpers in that order. A body is the magic
`k8s\\x00` and a `runtime.Unknown{typeMeta{apiVersion, kind}, raw, contentEncoding, contentType}`.
"""

from __future__ import annotations

from collections.abc import Iterable

MAGIC = b"k8s\x00"

# metav1.ListMeta with no selfLink, resourceVersion or continue token.
EMPTY_LIST_META = b"\x0a\x00\x12\x00\x1a\x00"


def varint(value: int) -> bytes:
    """Base-128 varint; negative numbers as their 64-bit two's complement, as Go's uint64(x)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def message(number: int, payload: bytes) -> bytes:
    """A length-delimited field (embedded message or bytes)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def string(number: int, text: str) -> bytes:
    return message(number, text.encode())


def strings(number: int, texts: Iterable[str]) -> bytes:
    """A repeated string field: one field per element."""
    return b"".join(string(number, text) for text in texts)


def integer(number: int, value: int) -> bytes:
    """A varint field (int32, int64, bool)."""
    return varint(number << 3) + varint(value)


def object_meta(name: str = "", namespace: str = "") -> bytes:
    """metav1.ObjectMeta with only a name and namespace: a zero creationTimestamp marshals to an
    empty message."""
    return b"".join(
        (
            string(1, name),
            string(2, ""),
            string(3, namespace),
            string(4, ""),
            string(5, ""),
            string(6, ""),
            integer(7, 0),
            message(8, b""),
        )
    )


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    """`k8s\\x00` + runtime.Unknown wrapping `raw`."""
    type_meta = string(1, api_version) + string(2, kind)
    return MAGIC + message(1, type_meta) + message(2, raw) + string(3, "") + string(4, "")
