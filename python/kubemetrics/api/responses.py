"""Writing API objects in the negotiated representation (apiserver `responsewriters`
`WriteObjectNegotiated`/`ErrorNegotiated`/`WriteRawJSON`).

- JSON is compact with a trailing newline (`json.Encoder`), or indented without one
  (`json.MarshalIndent`) when pretty printing applies (`negotiation.wants_pretty_output`).
- Protobuf bodies carry `Content-Type: application/vnd.kubernetes.protobuf`.
- An error is a `Status` negotiated again without any transformation (a Table client that also
  accepts plain JSON gets a JSON Status, `kubectl top` a protobuf one); when no clause can be served
  it is written as indented JSON, which is what WriteRawJSON does.

Each response records how it was encoded (`representation_of`) for the request log, so the
debug log shows what every client asked for and got.
"""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from kubemetrics.api.encoding import JSON_CONTENT_TYPE, escape_like_go
from kubemetrics.api.negotiation import PROTOBUF_MEDIA_TYPE, Endpoint, Negotiated, negotiate, wants_pretty_output
from kubemetrics.api.status import ApiStatusError

_REPRESENTATION = web.RequestKey("representation", str)
# Re-indenting a body bigger than this leaves the event loop (curl asking for 150k pods).
_INLINE_PRETTY_BYTES = 256 * 1024


def record_representation(request: web.Request, description: str) -> None:
    request[_REPRESENTATION] = description


def representation_of(request: web.Request) -> str:
    """What the response was encoded as, `-` when no negotiated object was written."""
    description: str = request.get(_REPRESENTATION, "-")
    return description


def indent_json(body: bytes) -> bytes:
    """A compact JSON body as json.MarshalIndent(obj, "", "  ") writes the same object: key order
    kept, two-space indentation, no trailing newline, Go's HTML-safe escapes."""
    return escape_like_go(orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2))


async def negotiated_response(
    request: web.Request,
    negotiated: Negotiated,
    body: bytes,
    *,
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A 200 with `body`, already encoded with `negotiated.serializer` (compact JSON or protobuf).
    `content_type` overrides the serializer's media type (aggregated discovery names its kind)."""
    pretty = wants_pretty_output(request, negotiated)
    if pretty:
        if len(body) > _INLINE_PRETTY_BYTES:
            body = await asyncio.get_running_loop().run_in_executor(None, indent_json, body)
        else:
            body = indent_json(body)
    description = negotiated.describe()
    if pretty and not negotiated.pretty:
        description += " (pretty)"
    record_representation(request, description)
    response_headers = {"Content-Type": content_type or negotiated.serializer.media_type}
    if headers:
        response_headers.update(headers)
    return web.Response(body=body, headers=response_headers)


def status_response(request: web.Request, error: ApiStatusError) -> web.Response:
    """The error as a `Status` in the representation the client accepts."""
    negotiated = negotiate(request.headers.get("Accept", ""), Endpoint.PLAIN)
    if negotiated is None:
        body, content_type, description = error.indented_body(), JSON_CONTENT_TYPE, "json (raw, nothing acceptable)"
    elif negotiated.is_protobuf:
        body, content_type, description = error.protobuf_body(), PROTOBUF_MEDIA_TYPE, "protobuf"
    elif wants_pretty_output(request, negotiated):
        body, content_type, description = error.indented_body(), JSON_CONTENT_TYPE, "json (pretty)"
    else:
        body, content_type, description = error.body(), JSON_CONTENT_TYPE, "json"
    record_representation(request, f"{description} Status")
    return web.Response(status=error.code, body=body, headers={"Content-Type": content_type})
