"""JSON as the Kubernetes apiserver writes it, for the small documents built in Python (Status,
discovery, the standalone core API). The large metrics lists are rendered in Rust.

The apiserver's JSON serializer is Go's `json.NewEncoder(w).Encode(obj)`
(apimachinery `runtime/serializer/json`): compact, keys in struct order, `<`, `>`, `&`, U+2028 and
U+2029 escaped (HTML-safe by default), and a trailing newline. Clients that compare bodies or cache
them by hash see the same bytes from us.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

JSON_CONTENT_TYPE = "application/json"

# Go's encoder escapes these inside strings; none of them can appear outside a string in JSON.
_GO_HTML_ESCAPES = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def escape_like_go(document: bytes) -> bytes:
    """Apply Go's HTML-safe string escapes to compact JSON produced by orjson."""
    for raw, escaped in _GO_HTML_ESCAPES:
        if raw in document:
            document = document.replace(raw, escaped)
    return document


def encode_object(document: Mapping[str, object]) -> bytes:
    """A Kubernetes API object as the apiserver's JSON serializer writes it (with the trailing newline)."""
    return escape_like_go(orjson.dumps(document)) + b"\n"


def encode_indented(document: Mapping[str, object]) -> bytes:
    """`json.MarshalIndent(v, "", "  ")` as used by apiserver's WriteRawJSON (`/version`): two-space
    indent, `": "` between key and value, no trailing newline."""
    return escape_like_go(orjson.dumps(document, option=orjson.OPT_INDENT_2))
