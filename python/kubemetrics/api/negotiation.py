"""Accept-header negotiation as the generic apiserver does it (apiserver
`endpoints/handlers/negotiation/negotiate.go` over munnerz/goautoneg), so each client gets the
representation metrics-server would give it.

Clauses are parsed and ordered exactly like goautoneg (q-value first, then specific before
wildcard, with Go's insertion sort for the short lists real clients send; `q=0` is not a refusal
there, only the lowest preference). Each clause is tried against our serializers in order
(JSON, then protobuf); a clause's `as`/`g`/`v` parameters ask for a transformation (a Table,
metadata only, aggregated discovery) that the endpoint must allow, otherwise the clause is skipped.

Serializers: `application/json` and `application/vnd.kubernetes.protobuf`. metrics-server's codec
factory also has YAML; kubemetrics does not serve YAML, so a YAML-only request gets the
406 `NotAcceptable` Status the apiserver sends when nothing matches (listing what we do serve).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from kubemetrics.api.status import ApiStatusError, StatusDetails

JSON_MEDIA_TYPE = "application/json"
PROTOBUF_MEDIA_TYPE = "application/vnd.kubernetes.protobuf"

META_GROUP = "meta.k8s.io"
META_VERSIONS = ("v1", "v1beta1")
DISCOVERY_GROUP = "apidiscovery.k8s.io"
DISCOVERY_LIST_KIND = "APIGroupDiscoveryList"
# The only aggregated discovery version metrics-server v0.9 serves: apiserver's
# AggregatedDiscoveryRemoveBetaType gate is locked on since Kubernetes 1.35 (libraries v0.36), so a
# v2beta1 clause is skipped like any unknown transformation and the client falls back to legacy.
DISCOVERY_VERSION = "v2"


class Serializer(enum.Enum):
    JSON = JSON_MEDIA_TYPE
    PROTOBUF = PROTOBUF_MEDIA_TYPE

    @property
    def media_type(self) -> str:
        return self.value

    @property
    def subtype(self) -> str:
        return self.value.split("/", 1)[1]


SERIALIZERS = (Serializer.JSON, Serializer.PROTOBUF)


@dataclass(frozen=True, slots=True)
class AcceptClause:
    type: str
    subtype: str
    q: float = 1.0
    params: Mapping[str, str] = field(default_factory=dict)


def parse_accept(header: str) -> list[AcceptClause]:
    """goautoneg.ParseAccept: comma-separated clauses, `type/subtype` (a lone `*` means `*/*`;
    no subtype or a third part drops the clause), `;key=value` parameters (`q` parsed as a float,
    0 when malformed; an empty value or a second `=` drops the parameter), spaces trimmed; then
    sorted by preference."""
    clauses: list[AcceptClause] = []
    for part in header.split(","):
        part = part.strip(" ")
        media_range, _, param_text = part.partition(";")
        type_, _, rest = media_range.partition("/")
        type_ = type_.strip(" ")
        if not rest:
            if type_ != "*":
                continue
            subtype = "*"
        else:
            subtype, _, extra = rest.partition("/")
            if extra:
                continue
            subtype = subtype.strip(" ")
        q = 1.0
        params: dict[str, str] = {}
        for param in param_text.split(";") if param_text else ():
            key, _, value = param.partition("=")
            value, _, extra = value.partition("=")
            if not value or extra:
                continue
            key = key.strip(" ")
            if key == "q":
                q = _parse_q(value)
            else:
                params[key] = value.strip(" ")
        clauses.append(AcceptClause(type_, subtype, q, params))
    return _sorted_by_preference(clauses)


def _parse_q(text: str) -> float:
    # strconv.ParseFloat(text, 32) without trimming: an error leaves 0.
    try:
        return float(text) if text == text.strip() else 0.0
    except ValueError:
        return 0.0


def _prefers(a: AcceptClause, b: AcceptClause) -> bool:
    """goautoneg's Less: a higher q, or a specific type or subtype before a wildcard."""
    if a.q > b.q:
        return True
    if a.type != "*" and b.type == "*":
        return True
    return a.subtype != "*" and b.subtype == "*"


def _sorted_by_preference(clauses: list[AcceptClause]) -> list[AcceptClause]:
    # Go's sort.Sort is an insertion sort for fewer than 13 elements; its exact swaps matter
    # because _prefers is not a strict weak order (q and wildcards can disagree).
    ordered = list(clauses)
    for i in range(1, len(ordered)):
        j = i
        while j > 0 and _prefers(ordered[j], ordered[j - 1]):
            ordered[j], ordered[j - 1] = ordered[j - 1], ordered[j]
            j -= 1
    return ordered


@dataclass(frozen=True, slots=True)
class GroupVersionKind:
    group: str = ""
    version: str = ""
    kind: str = ""

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def media_type_params(self) -> str:
        """What generateMediaTypeWithGVK appends to a Content-Type: `;g=…;v=…;as=…`."""
        params = ""
        if self.group:
            params += f";g={self.group}"
        if self.version:
            params += f";v={self.version}"
        if self.kind:
            params += f";as={self.kind}"
        return params


class Endpoint(enum.Enum):
    """What an endpoint lets a client ask for beyond its own objects (EndpointRestrictions)."""

    # Status errors, legacy discovery: no transformation (DefaultEndpointRestrictions).
    PLAIN = "plain"
    # metrics.k8s.io resources (the handlers' RequestScope): Table as JSON, metadata-only views.
    METRICS_RESOURCE = "metrics resource"
    # `/apis` asked for aggregated discovery (aggregated.DiscoveryEndpointRestrictions).
    AGGREGATED_DISCOVERY = "aggregated discovery"

    def allows_transform(self, serializer: Serializer, target: GroupVersionKind | None) -> bool:
        if self is Endpoint.AGGREGATED_DISCOVERY:
            return target == GroupVersionKind(DISCOVERY_GROUP, DISCOVERY_VERSION, DISCOVERY_LIST_KIND)
        if target is None:
            return True
        if self is Endpoint.PLAIN or target.group != META_GROUP or target.version not in META_VERSIONS:
            return False
        if target.kind == "Table":
            return serializer is Serializer.JSON
        return target.kind in ("PartialObjectMetadata", "PartialObjectMetadataList")

    def allows_server_version(self, version: str) -> bool:
        # RequestScope.MetaGroupVersion is meta.k8s.io/v1; the other endpoints allow none.
        return self is Endpoint.METRICS_RESOURCE and version == "v1"


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The representation a request gets: serializer, requested transformation, pretty printing."""

    serializer: Serializer
    target: GroupVersionKind | None = None
    pretty: bool = False

    @property
    def is_protobuf(self) -> bool:
        return self.serializer is Serializer.PROTOBUF

    def describe(self) -> str:
        """For the request log: `protobuf`, `json`, `json, meta.k8s.io/v1 Table`, …"""
        text = self.serializer.name.lower()
        if self.target is not None:
            text += f", {self.target.group_version} {self.target.kind}"
        return text + (" (pretty)" if self.pretty else "")


def negotiate(accept: str, endpoint: Endpoint) -> Negotiated | None:
    """NegotiateMediaTypeOptions: the first clause, in preference order, that one of our
    serializers can answer with parameters the endpoint accepts; an empty header means JSON.
    None when nothing is acceptable."""
    if not accept:
        return Negotiated(Serializer.JSON)
    for clause in parse_accept(accept):
        for serializer in SERIALIZERS:
            if not _clause_matches(clause, serializer):
                continue
            negotiated = _accept_params(clause.params, serializer, endpoint)
            if negotiated is not None:
                return negotiated
    return None


def _clause_matches(clause: AcceptClause, serializer: Serializer) -> bool:
    if clause.type == "*" and clause.subtype == "*":
        return True
    return clause.type == "application" and clause.subtype in (serializer.subtype, "*")


def _accept_params(params: Mapping[str, str], serializer: Serializer, endpoint: Endpoint) -> Negotiated | None:
    """acceptMediaTypeOptions: None when a parameter rules the clause out."""
    target: GroupVersionKind | None = None
    pretty = False
    for key, value in params.items():
        if key in ("as", "g", "v"):
            target = target or GroupVersionKind()
            if key == "as":
                target = GroupVersionKind(target.group, target.version, value)
            elif key == "g":
                target = GroupVersionKind(value, target.version, target.kind)
            else:
                target = GroupVersionKind(target.group, value, target.kind)
        elif key == "stream":
            # Both serializers stream; only the watch schema exists.
            if value and value != "watch":
                return None
        elif key == "sv":
            if value and not endpoint.allows_server_version(value):
                return None
        elif key == "pretty":
            pretty = value == "1"
    if not endpoint.allows_transform(serializer, target):
        return None
    return Negotiated(serializer, target, pretty)


def wants_pretty_output(request: web.Request, negotiated: Negotiated) -> bool:
    """isPrettyPrint: JSON is indented for `pretty=1` in the media type, for a `pretty` query
    value that parses as true, or (without one) for curl, Wget and browsers by User-Agent."""
    if negotiated.serializer is not Serializer.JSON:
        return False
    if negotiated.pretty:
        return True
    if "pretty" in request.query_string:
        value = request.query.get("pretty", "")
        if value:
            return value in ("1", "t", "T", "true", "TRUE", "True")
    user_agent = request.headers.get("User-Agent", "")
    return user_agent.startswith(("curl", "Wget", "Mozilla/5.0"))


def not_acceptable(message: str) -> ApiStatusError:
    """errors.NewGenericServerResponse(406, …): the transformation asked for cannot be served."""
    return ApiStatusError(code=406, reason="NotAcceptable", message=message, details=StatusDetails())


def unsupported_media_types() -> ApiStatusError:
    """negotiation.NewNotAcceptableError: no clause matched; no details."""
    accepted = ", ".join(serializer.media_type for serializer in SERIALIZERS)
    return ApiStatusError(
        code=406, reason="NotAcceptable", message=f"only the following media types are accepted: {accepted}"
    )
