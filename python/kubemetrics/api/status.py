"""Kubernetes `Status` error responses, built as apimachinery's `errors.New*` constructors build them.

Clients (kubectl, client-go, the HPA) show `message` to users and branch on `reason`/`code`, so the
wording follows metrics-server exactly (see reference/metrics-server.md §2.4). Key order is
`metav1.Status`'s struct order; `details` keys follow `StatusDetails` (name, group, kind) and empty
ones are omitted, as `omitempty` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from kubemetrics.api import protobuf
from kubemetrics.api.encoding import JSON_CONTENT_TYPE, encode_indented, encode_object

METRICS_GROUP = "metrics.k8s.io"


@dataclass(frozen=True, slots=True)
class StatusDetails:
    name: str = ""
    group: str = ""
    kind: str = ""
    causes: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        fields: dict[str, object] = {"name": self.name, "group": self.group, "kind": self.kind}
        if self.causes:
            fields["causes"] = [{"message": cause} for cause in self.causes]
        return {key: value for key, value in fields.items() if value}

    def as_protobuf(self) -> bytes:
        """metav1.StatusDetails: name, group, kind, causes (StatusCause{type, message, field}),
        retryAfterSeconds, uid; all written."""
        causes = b"".join(
            protobuf.message(4, protobuf.string(1, "") + protobuf.string(2, cause) + protobuf.string(3, ""))
            for cause in self.causes
        )
        return b"".join(
            (
                protobuf.string(1, self.name),
                protobuf.string(2, self.group),
                protobuf.string(3, self.kind),
                causes,
                protobuf.integer(5, 0),
                protobuf.string(6, ""),
            )
        )


@dataclass(eq=False)
class ApiStatusError(Exception):
    """A failed request, answered with a `Status` body and its HTTP code."""

    code: int
    reason: str
    message: str
    # None: no `details` key at all (errors.NewBadRequest); StatusDetails(): `"details":{}`.
    details: StatusDetails | None = None

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def document(self) -> dict[str, object]:
        """The `Status` object in metav1.Status field order."""
        status: dict[str, object] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            status["details"] = self.details.as_json()
        status["code"] = self.code
        return status

    def body(self) -> bytes:
        """Compact JSON, as the apiserver's encoder writes it."""
        return encode_object(self.document())

    def indented_body(self) -> bytes:
        """json.MarshalIndent: what WriteRawJSON sends when no Accept clause can be served, and
        what curl (pretty printing) gets."""
        return encode_indented(self.document())

    def protobuf_body(self) -> bytes:
        """metav1.Status in the `k8s\\x00` + runtime.Unknown envelope (typeMeta v1/Status):
        metadata (an empty ListMeta), status, message, reason, details when set, code."""
        raw = b"".join(
            (
                protobuf.message(1, protobuf.EMPTY_LIST_META),
                protobuf.string(2, "Failure"),
                protobuf.string(3, self.message),
                protobuf.string(4, self.reason),
                protobuf.message(5, self.details.as_protobuf()) if self.details is not None else b"",
                protobuf.integer(6, self.code),
            )
        )
        return protobuf.envelope("v1", "Status", raw)

    def response(self) -> web.Response:
        return web.Response(status=self.code, body=self.body(), headers={"Content-Type": JSON_CONTENT_TYPE})


def not_found(group: str, resource: str, name: str) -> ApiStatusError:
    """errors.NewNotFound(GroupResource{group, resource}, name): `<resource>.<group> "<name>" not found`."""
    qualified = f"{resource}.{group}" if group else resource
    return ApiStatusError(
        code=404,
        reason="NotFound",
        message=f"{qualified} {go_quote(name)} not found",
        details=StatusDetails(name=name, group=group, kind=resource),
    )


def bad_request(message: str) -> ApiStatusError:
    """errors.NewBadRequest: no details."""
    return ApiStatusError(code=400, reason="BadRequest", message=message)


def method_not_supported(group: str, resource: str, action: str) -> ApiStatusError:
    """errors.NewMethodNotSupported, e.g. `watch is not supported on resources of kind "nodes.metrics.k8s.io"`."""
    qualified = f"{resource}.{group}" if group else resource
    return ApiStatusError(
        code=405,
        reason="MethodNotAllowed",
        message=f"{action} is not supported on resources of kind {go_quote(qualified)}",
        details=StatusDetails(group=group, kind=resource),
    )


def no_such_path() -> ApiStatusError:
    """What go-restful's routing error becomes (errors.NewGenericServerResponse(404, ...)) for an
    unknown path under an installed API prefix."""
    return ApiStatusError(
        code=404,
        reason="NotFound",
        message="the server could not find the requested resource",
        details=StatusDetails(),
    )


def method_not_allowed() -> ApiStatusError:
    """go-restful's 405 for a known path with a verb the API does not install (POST, PUT, DELETE, ...)."""
    return ApiStatusError(
        code=405,
        reason="MethodNotAllowed",
        message="the server does not allow this method on the requested resource",
        details=StatusDetails(),
    )


def internal_error(cause: str) -> ApiStatusError:
    """errors.NewInternalError: the cause is repeated in details.causes."""
    return ApiStatusError(
        code=500,
        reason="InternalError",
        message=f"Internal error occurred: {cause}",
        details=StatusDetails(causes=(cause,)),
    )


def go_quote(text: str) -> str:
    """Go's `%q` for the names that appear in messages: double quotes, backslash escapes, and \\u
    escapes for non-printable characters (printable non-ASCII is kept)."""
    out = ['"']
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char in _GO_SHORT_ESCAPES:
            out.append(_GO_SHORT_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        else:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_GO_SHORT_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
