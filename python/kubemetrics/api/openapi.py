"""OpenAPI documents for metrics.k8s.io, shaped like the ones the generic apiserver builds with
kube-openapi from metrics-server's routes and generated definitions (pkg/api/generated/openapi).

kube-apiserver's aggregator downloads `/openapi/v2` and the `/openapi/v3` documents from every
aggregated server and merges them into its own; `kubectl explain nodemetrics` and client-side
validation read them from there. What matters to those clients is kept exact: definition names
(`io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics`, the meta and resource types they refer
to), property types, `required`, the `x-kubernetes-*` extensions, the group-version-kind of each
kind, one path per route with its operation id and action. Descriptions are short. The title
names this server, the version is its own.

Handlers (kube-openapi `handler`/`handler3`): JSON only (the protobuf forms of the specs are not
served; an Accept without JSON or a wildcard gets an empty 406), `ETag` = quoted upper-case hex
SHA-512 of the body with `Vary: Accept`, a 304 for a matching `If-None-Match`. `/openapi/v3` lists
each group-version document with its hash; asking a document with a stale `?hash=` redirects to the
current one (301), and the current hash makes the response cacheable for a year.
"""

from __future__ import annotations

import email.utils
import hashlib
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from aiohttp import web

import kubemetrics
from kubemetrics.api.encoding import escape_like_go
from kubemetrics.api.negotiation import parse_accept

JSON_CONTENT_TYPE = "application/json"

_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_METRICS = "io.k8s.metrics.pkg.apis.metrics.v1beta1."
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"

_KIND_DESCRIPTION = (
    "Kind is a string value representing the REST resource this object represents. Servers may infer this "
    "from the endpoint the client submits requests to. Cannot be updated. In CamelCase."
)
_API_VERSION_DESCRIPTION = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should convert "
    "recognized schemas to the latest internal value, and may reject unrecognized values."
)

Schema = dict[str, object]


def _ref(name: str, **fields: object) -> Schema:
    return {"$ref": f"#/definitions/{name}", **fields}


def _string(description: str, **fields: object) -> Schema:
    return {"description": description, "type": "string", **fields}


def _type_meta_properties() -> dict[str, Schema]:
    return {"apiVersion": _string(_API_VERSION_DESCRIPTION), "kind": _string(_KIND_DESCRIPTION)}


def _gvk(group: str, version: str, kind: str) -> list[dict[str, str]]:
    return [{"group": group, "kind": kind, "version": version}]


def _usage(description: str) -> Schema:
    return {"additionalProperties": _ref(_QUANTITY), "description": description, "type": "object"}


def _metrics_definitions() -> dict[str, Schema]:
    object_metadata = _ref(_META + "ObjectMeta", default={}, description="Standard object's metadata.")
    list_metadata = _ref(_META + "ListMeta", default={}, description="Standard list metadata.")
    interval = (
        "The following fields define time interval from which metrics were collected from the interval "
        "[Timestamp-Window, Timestamp]."
    )
    return {
        _METRICS + "ContainerMetrics": {
            "description": "ContainerMetrics sets resource usage metrics of a container.",
            "properties": {
                "name": _string("Container name corresponding to the one from pod.spec.containers.", default=""),
                "usage": _usage("The memory usage is the memory working set."),
            },
            "required": ["name", "usage"],
            "type": "object",
        },
        _METRICS + "NodeMetrics": {
            "description": "NodeMetrics sets resource usage metrics of a node.",
            "properties": {
                **_type_meta_properties(),
                "metadata": object_metadata,
                "timestamp": _ref(_META + "Time", description=interval),
                "usage": _usage("The memory usage is the memory working set."),
                "window": _ref(_META + "Duration"),
            },
            "required": ["timestamp", "window", "usage"],
            "type": "object",
            "x-kubernetes-group-version-kind": _gvk("metrics.k8s.io", "v1beta1", "NodeMetrics"),
        },
        _METRICS + "NodeMetricsList": {
            "description": "NodeMetricsList is a list of NodeMetrics.",
            "properties": {
                **_type_meta_properties(),
                "items": {
                    "description": "List of node metrics.",
                    "items": _ref(_METRICS + "NodeMetrics"),
                    "type": "array",
                },
                "metadata": list_metadata,
            },
            "required": ["items"],
            "type": "object",
            "x-kubernetes-group-version-kind": _gvk("metrics.k8s.io", "v1beta1", "NodeMetricsList"),
        },
        _METRICS + "PodMetrics": {
            "description": "PodMetrics sets resource usage metrics of a pod.",
            "properties": {
                **_type_meta_properties(),
                "containers": {
                    "description": "Metrics for all containers are collected within the same time window.",
                    "items": _ref(_METRICS + "ContainerMetrics"),
                    "type": "array",
                    "x-kubernetes-list-type": "atomic",
                },
                "metadata": object_metadata,
                "timestamp": _ref(_META + "Time", description=interval),
                "window": _ref(_META + "Duration"),
            },
            "required": ["timestamp", "window", "containers"],
            "type": "object",
            "x-kubernetes-group-version-kind": _gvk("metrics.k8s.io", "v1beta1", "PodMetrics"),
        },
        _METRICS + "PodMetricsList": {
            "description": "PodMetricsList is a list of PodMetrics.",
            "properties": {
                **_type_meta_properties(),
                "items": {
                    "description": "List of pod metrics.",
                    "items": _ref(_METRICS + "PodMetrics"),
                    "type": "array",
                },
                "metadata": list_metadata,
            },
            "required": ["items"],
            "type": "object",
            "x-kubernetes-group-version-kind": _gvk("metrics.k8s.io", "v1beta1", "PodMetricsList"),
        },
    }


def _string_map(description: str) -> Schema:
    return {"additionalProperties": {"default": "", "type": "string"}, "description": description, "type": "object"}


def _meta_definitions() -> dict[str, Schema]:
    return {
        _QUANTITY: {
            "description": (
                "Quantity is a fixed-point number with an optional SI or binary suffix, e.g. 100m, 1.5, 64Mi, 2Gi, "
                "always written in canonical form."
            ),
            "type": "string",
        },
        _META + "Duration": {
            "description": "Duration is a time.Duration written as a Go duration string, e.g. 15s or 1m0.5s.",
            "type": "string",
        },
        _META + "Time": {
            "description": "Time is a timestamp written in RFC 3339 form at whole seconds.",
            "format": "date-time",
            "type": "string",
        },
        _META + "FieldsV1": {
            "description": "FieldsV1 stores a set of fields in a trie-like structure, in JSON format.",
            "type": "object",
        },
        _META + "ManagedFieldsEntry": {
            "description": "ManagedFieldsEntry records the fields a workflow (manager) owns and its last operation.",
            "properties": {
                "apiVersion": _string("APIVersion of the resource the fieldset applies to."),
                "fieldsType": _string("FieldsType is the discriminator for the fields format: FieldsV1."),
                "fieldsV1": _ref(_META + "FieldsV1", description="FieldsV1 holds the first JSON version format."),
                "manager": _string("Manager is an identifier of the workflow managing these fields."),
                "operation": _string("Operation is the type of operation which led to this entry: Apply or Update."),
                "subresource": _string("Subresource is the name of the subresource used to update the object."),
                "time": _ref(_META + "Time", description="Time is when the last operation happened."),
            },
            "type": "object",
        },
        _META + "OwnerReference": {
            "description": "OwnerReference contains enough information to identify an owning object.",
            "properties": {
                "apiVersion": _string("API version of the referent.", default=""),
                "blockOwnerDeletion": {
                    "description": "Whether the owner blocks deletion of this object in foreground deletion.",
                    "type": "boolean",
                },
                "controller": {
                    "description": "Whether the reference points to the managing controller.",
                    "type": "boolean",
                },
                "kind": _string("Kind of the referent.", default=""),
                "name": _string("Name of the referent.", default=""),
                "uid": _string("UID of the referent.", default=""),
            },
            "required": ["apiVersion", "kind", "name", "uid"],
            "type": "object",
            "x-kubernetes-map-type": "atomic",
        },
        _META + "ShardInfo": {
            "description": "ShardInfo describes the shard selector applied to a list.",
            "properties": {"selector": _string("Selector is the shard selector string of the list.", default="")},
            "required": ["selector"],
            "type": "object",
        },
        _META + "ListMeta": {
            "description": "ListMeta describes metadata that synthetic resources must have, including lists.",
            "properties": {
                "continue": _string("Continue is set when more results are available (never, here)."),
                "remainingItemCount": {
                    "description": "The number of subsequent items in the list not included in this response.",
                    "format": "int64",
                    "type": "integer",
                },
                "resourceVersion": _string("The version of the list, for watches and consistent reads."),
                "selfLink": _string("Deprecated: selfLink is a legacy read-only field that is no longer populated."),
                "shardInfo": _ref(_META + "ShardInfo", description="The shard selector applied to this list."),
            },
            "type": "object",
        },
        _META + "ObjectMeta": {
            "description": "ObjectMeta is metadata that all persisted resources must have.",
            "properties": {
                "annotations": _string_map("Annotations is an unstructured key value map of non-identifying data."),
                "creationTimestamp": _ref(
                    _META + "Time", description="When the object was created; metrics objects carry the response time."
                ),
                "deletionGracePeriodSeconds": {
                    "description": "Seconds allowed for graceful termination before the object is removed.",
                    "format": "int64",
                    "type": "integer",
                },
                "deletionTimestamp": _ref(_META + "Time", description="When the object will be deleted."),
                "finalizers": {
                    "description": "Must be empty before the object is deleted from the registry.",
                    "items": {"default": "", "type": "string"},
                    "type": "array",
                    "x-kubernetes-list-type": "set",
                    "x-kubernetes-patch-strategy": "merge",
                },
                "generateName": _string("An optional prefix used by the server to generate a unique name."),
                "generation": {
                    "description": "A sequence number representing a specific generation of the desired state.",
                    "format": "int64",
                    "type": "integer",
                },
                "labels": _string_map("Map of string keys and values that can be used to organize and select objects."),
                "managedFields": {
                    "description": "Maps workflow-id and version to the set of fields managed by that workflow.",
                    "items": _ref(_META + "ManagedFieldsEntry"),
                    "type": "array",
                    "x-kubernetes-list-type": "atomic",
                },
                "name": _string("Name must be unique within a namespace."),
                "namespace": _string("Namespace defines the space within which each name must be unique."),
                "ownerReferences": {
                    "description": "List of objects depended by this object.",
                    "items": _ref(_META + "OwnerReference"),
                    "type": "array",
                    "x-kubernetes-list-map-keys": ["uid"],
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "uid",
                    "x-kubernetes-patch-strategy": "merge",
                },
                "resourceVersion": _string("An opaque value that represents the internal version of this object."),
                "selfLink": _string("Deprecated: selfLink is a legacy read-only field that is no longer populated."),
                "uid": _string("UID is the unique in time and space value for this object."),
            },
            "type": "object",
        },
    }


def _discovery_definitions() -> dict[str, Schema]:
    group_version = _ref(_META + "GroupVersionForDiscovery", default={})
    return {
        _META + "GroupVersionForDiscovery": {
            "description": "GroupVersion contains the group/version and version strings of a version.",
            "properties": {
                "groupVersion": _string(
                    'groupVersion specifies the API group and version in the form "group/version"', default=""
                ),
                "version": _string('version specifies the version in the form of "version".', default=""),
            },
            "required": ["groupVersion", "version"],
            "type": "object",
        },
        _META + "ServerAddressByClientCIDR": {
            "description": "ServerAddressByClientCIDR helps the client to determine the server address to use.",
            "properties": {
                "clientCIDR": _string(
                    "The CIDR with which clients can match their IP to use this server address.", default=""
                ),
                "serverAddress": _string("Address of this server: hostname or IP and an optional port.", default=""),
            },
            "required": ["clientCIDR", "serverAddress"],
            "type": "object",
        },
        _META + "APIGroup": {
            "description": "APIGroup contains the name, the supported versions, and the preferred version of a group.",
            "properties": {
                **_type_meta_properties(),
                "name": _string("name is the name of the group.", default=""),
                "preferredVersion": _ref(
                    _META + "GroupVersionForDiscovery", default={}, description="The version preferred by the server."
                ),
                "serverAddressByClientCIDRs": {
                    "description": "A map of client CIDR to the server address that serves this group.",
                    "items": _ref(_META + "ServerAddressByClientCIDR", default={}),
                    "type": "array",
                    "x-kubernetes-list-type": "atomic",
                },
                "versions": {
                    "description": "versions are the versions supported in this group.",
                    "items": group_version,
                    "type": "array",
                    "x-kubernetes-list-type": "atomic",
                },
            },
            "required": ["name", "versions"],
            "type": "object",
            "x-kubernetes-group-version-kind": _gvk("", "v1", "APIGroup"),
        },
        _META + "APIGroupList": {
            "description": "APIGroupList is a list of APIGroup, to allow clients to discover the API at /apis.",
            "properties": {
                **_type_meta_properties(),
                "groups": {
                    "description": "groups is a list of APIGroup.",
                    "items": _ref(_META + "APIGroup", default={}),
                    "type": "array",
                    "x-kubernetes-list-type": "atomic",
                },
            },
            "required": ["groups"],
            "type": "object",
            "x-kubernetes-group-version-kind": _gvk("", "v1", "APIGroupList"),
        },
        _META + "APIResource": {
            "description": "APIResource specifies the name of a resource and whether it is namespaced.",
            "properties": {
                "categories": {
                    "description": "categories is a list of the grouped resources this resource belongs to.",
                    "items": {"default": "", "type": "string"},
                    "type": "array",
                    "x-kubernetes-list-type": "atomic",
                },
                "group": _string("group is the preferred group of the resource."),
                "kind": _string("kind is the kind for the resource.", default=""),
                "name": _string("name is the plural name of the resource.", default=""),
                "namespaced": {
                    "default": False,
                    "description": "namespaced indicates if a resource is namespaced.",
                    "type": "boolean",
                },
                "shortNames": {
                    "description": "shortNames is a list of suggested short names of the resource.",
                    "items": {"default": "", "type": "string"},
                    "type": "array",
                    "x-kubernetes-list-type": "atomic",
                },
                "singularName": _string("singularName is the singular name of the resource.", default=""),
                "storageVersionHash": _string("The hash value of the storage version."),
                "verbs": {
                    "description": "verbs is a list of supported kube verbs.",
                    "items": {"default": "", "type": "string"},
                    "type": "array",
                },
                "version": _string("version is the preferred version of the resource."),
            },
            "required": ["name", "singularName", "namespaced", "kind", "verbs"],
            "type": "object",
        },
        _META + "APIResourceList": {
            "description": "APIResourceList is a list of APIResource of a group/version.",
            "properties": {
                **_type_meta_properties(),
                "groupVersion": _string(
                    "groupVersion is the group and version this APIResourceList is for.", default=""
                ),
                "resources": {
                    "description": "resources contains the name of the resources and if they are namespaced.",
                    "items": _ref(_META + "APIResource", default={}),
                    "type": "array",
                    "x-kubernetes-list-type": "atomic",
                },
            },
            "required": ["groupVersion", "resources"],
            "type": "object",
            "x-kubernetes-group-version-kind": _gvk("", "v1", "APIResourceList"),
        },
    }


@dataclass(frozen=True, slots=True)
class Route:
    """One GET route as the generic apiserver registers it."""

    path: str
    operation_id: str
    description: str
    response: str
    tag: str
    action: str = ""
    kind: str = ""
    list_parameters: bool = False


_METRICS_TAG = "metrics_v1beta1"
_LIST_PARAMETERS = (
    ("allowWatchBookmarks", "boolean", "Requests watch events with type BOOKMARK (watch is not supported here)."),
    ("continue", "string", "Continue token of a paged list; ignored, lists are never paged."),
    ("fieldSelector", "string", "Restrict the list by fields: metadata.name and metadata.namespace."),
    ("labelSelector", "string", "Restrict the list by labels of the nodes or pods."),
    ("limit", "integer", "Maximum number of items; ignored, lists are never paged."),
    ("resourceVersion", "string", "Accepted and ignored."),
    ("resourceVersionMatch", "string", "Accepted and ignored."),
    ("sendInitialEvents", "boolean", "Only for watch, which is not supported."),
    ("timeoutSeconds", "integer", "Accepted and ignored."),
    ("watch", "boolean", "Watch is not supported: the server answers 405."),
)

ROUTES = (
    Route("/apis/", "getAPIVersions", "get available API versions", _META + "APIGroupList", "apis"),
    Route("/apis/metrics.k8s.io/", "getMetricsAPIGroup", "get information of a group", _META + "APIGroup", "metrics"),
    Route(
        "/apis/metrics.k8s.io/v1beta1/",
        "getMetricsV1beta1APIResources",
        "get available resources",
        _META + "APIResourceList",
        _METRICS_TAG,
    ),
    Route(
        "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods",
        "listMetricsV1beta1NamespacedPodMetrics",
        "list objects of kind PodMetrics",
        _METRICS + "PodMetricsList",
        _METRICS_TAG,
        "list",
        "PodMetrics",
        list_parameters=True,
    ),
    Route(
        "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}",
        "readMetricsV1beta1NamespacedPodMetrics",
        "read the specified PodMetrics",
        _METRICS + "PodMetrics",
        _METRICS_TAG,
        "get",
        "PodMetrics",
    ),
    Route(
        "/apis/metrics.k8s.io/v1beta1/nodes",
        "listMetricsV1beta1NodeMetrics",
        "list objects of kind NodeMetrics",
        _METRICS + "NodeMetricsList",
        _METRICS_TAG,
        "list",
        "NodeMetrics",
        list_parameters=True,
    ),
    Route(
        "/apis/metrics.k8s.io/v1beta1/nodes/{name}",
        "readMetricsV1beta1NodeMetrics",
        "read the specified NodeMetrics",
        _METRICS + "NodeMetrics",
        _METRICS_TAG,
        "get",
        "NodeMetrics",
    ),
    Route(
        "/apis/metrics.k8s.io/v1beta1/pods",
        "listMetricsV1beta1PodMetricsForAllNamespaces",
        "list objects of kind PodMetrics",
        _METRICS + "PodMetricsList",
        _METRICS_TAG,
        "list",
        "PodMetrics",
        list_parameters=True,
    ),
)

_MEDIA_TYPES = ("application/json", "application/vnd.kubernetes.protobuf")


def _path_parameters(route: Route) -> list[Schema]:
    parameters: list[Schema] = []
    if "{name}" in route.path:
        parameters.append(
            {
                "description": f"name of the {route.kind}",
                "in": "path",
                "name": "name",
                "required": True,
                "type": "string",
                "uniqueItems": True,
            }
        )
    if "{namespace}" in route.path:
        parameters.append(
            {
                "description": "object name and auth scope, such as for teams and projects",
                "in": "path",
                "name": "namespace",
                "required": True,
                "type": "string",
                "uniqueItems": True,
            }
        )
    if route.action:
        parameters.append(
            {
                "description": "If 'true', then the output is pretty printed.",
                "in": "query",
                "name": "pretty",
                "type": "string",
                "uniqueItems": True,
            }
        )
    return parameters


def _v2_operation(route: Route) -> Schema:
    operation: Schema = {
        "consumes": list(_MEDIA_TYPES),
        "description": route.description,
        "operationId": route.operation_id,
        "produces": list(_MEDIA_TYPES),
        "responses": {
            "200": {"description": "OK", "schema": _ref(route.response)},
            "401": {"description": "Unauthorized"},
        },
        "schemes": ["https"],
        "tags": [route.tag],
    }
    if route.list_parameters:
        operation["parameters"] = [
            {"description": description, "in": "query", "name": name, "type": type_, "uniqueItems": True}
            for name, type_, description in _LIST_PARAMETERS
        ]
    if route.action:
        operation["x-kubernetes-action"] = route.action
        operation["x-kubernetes-group-version-kind"] = {
            "group": "metrics.k8s.io",
            "kind": route.kind,
            "version": "v1beta1",
        }
    return operation


def _v2_path(route: Route) -> Schema:
    item: Schema = {"get": _v2_operation(route)}
    parameters = _path_parameters(route)
    if parameters:
        item["parameters"] = parameters
    return item


def _info() -> Schema:
    return {"title": "kubemetrics", "version": f"v{kubemetrics.__version__}"}


_BEARER_TOKEN = {
    "description": "Bearer Token authentication",
    "in": "header",
    "name": "authorization",
    "type": "apiKey",
}


def _definitions() -> dict[str, Schema]:
    return {**_meta_definitions(), **_discovery_definitions(), **_metrics_definitions()}


def _referenced(definitions: Mapping[str, Schema], roots: list[str]) -> dict[str, Schema]:
    """The definitions reachable from `roots` (the builder publishes only those)."""
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending.extend(_refs_in(definitions[name]))
    return {name: definitions[name] for name in sorted(seen)}


def _refs_in(node: object) -> list[str]:
    if isinstance(node, dict):
        found = []
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.append(value.rsplit("/", 1)[1])
            else:
                found.extend(_refs_in(value))
        return found
    if isinstance(node, list):
        return [ref for value in node for ref in _refs_in(value)]
    return []


def build_v2() -> Schema:
    definitions = _definitions()
    return {
        "swagger": "2.0",
        "info": _info(),
        "paths": {route.path: _v2_path(route) for route in ROUTES},
        "definitions": _referenced(definitions, [route.response for route in ROUTES]),
        "securityDefinitions": {"BearerToken": _BEARER_TOKEN},
        "security": [{"BearerToken": []}],
    }


def _to_v3_schema(node: object) -> object:
    """A v2 schema in v3 form: refs into components, a ref with siblings wrapped in allOf (as
    kube-openapi's v3 builder writes them), Quantity as string-or-number."""
    if isinstance(node, list):
        return [_to_v3_schema(value) for value in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _to_v3_schema(value) for key, value in node.items() if key != "$ref"}
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = ref.replace("#/definitions/", "#/components/schemas/")
        if converted:
            converted["allOf"] = [{"$ref": target}]
        else:
            converted = {"$ref": target}
    return converted


def _v3_operation(route: Route) -> Schema:
    response_schema = _to_v3_schema(_ref(route.response))
    operation: Schema = {
        "tags": [route.tag],
        "description": route.description,
        "operationId": route.operation_id,
        "responses": {
            "200": {"description": "OK", "content": {media: {"schema": response_schema} for media in _MEDIA_TYPES}},
            "401": {"description": "Unauthorized"},
        },
    }
    if route.list_parameters:
        operation["parameters"] = [
            {"name": name, "in": "query", "description": description, "schema": {"type": type_, "uniqueItems": True}}
            for name, type_, description in _LIST_PARAMETERS
        ]
    if route.action:
        operation["x-kubernetes-action"] = route.action
        operation["x-kubernetes-group-version-kind"] = {
            "group": "metrics.k8s.io",
            "kind": route.kind,
            "version": "v1beta1",
        }
    return operation


def _v3_path(route: Route) -> Schema:
    item: Schema = {"get": _v3_operation(route)}
    parameters = [
        {
            "name": parameter["name"],
            "in": parameter["in"],
            "description": parameter["description"],
            **({"required": True} if parameter.get("required") else {}),
            "schema": {"type": "string", "uniqueItems": True},
        }
        for parameter in _path_parameters(route)
    ]
    if parameters:
        item["parameters"] = parameters
    return item


def build_v3(group_version_path: str) -> Schema:
    """The document for one `/openapi/v3/<path>`: the routes whose path is that prefix's own."""
    routes = [route for route in ROUTES if _v3_document_of(route) == group_version_path]
    referenced = _referenced(_definitions(), [route.response for route in routes])
    schemas = {name: _to_v3_schema(schema) for name, schema in referenced.items()}
    if _QUANTITY in referenced:
        # resource.Quantity's OpenAPIV3OneOfTypes: a string or a number.
        schemas[_QUANTITY] = {
            "description": referenced[_QUANTITY]["description"],
            "oneOf": [{"type": "string"}, {"type": "number"}],
        }
    return {
        "openapi": "3.0.0",
        "info": _info(),
        "paths": {route.path: _v3_path(route) for route in routes},
        "components": {"schemas": schemas, "securitySchemes": {"BearerToken": dict(_BEARER_TOKEN)}},
    }


def _v3_document_of(route: Route) -> str:
    """`/apis/metrics.k8s.io/v1beta1/nodes` → `apis/metrics.k8s.io/v1beta1`, `/apis/` → `apis`."""
    parts = route.path.strip("/").split("/")
    return "/".join(parts[:3])


V3_DOCUMENT_PATHS = ("apis", "apis/metrics.k8s.io", "apis/metrics.k8s.io/v1beta1")


def _encode(document: Mapping[str, object]) -> bytes:
    """json.Marshal of the spec: compact, no trailing newline, Go's HTML escapes, map keys sorted."""
    return escape_like_go(orjson.dumps(document, option=orjson.OPT_SORT_KEYS))


def _etag(body: bytes) -> str:
    return hashlib.sha512(body).hexdigest().upper()


@dataclass(frozen=True, slots=True)
class SpecDocument:
    body: bytes
    etag: str


class OpenApiHandlers:
    """`/openapi/v2`, `/openapi/v3` and `/openapi/v3/<group-version path>`, built once."""

    def __init__(self) -> None:
        self._last_modified = email.utils.formatdate(time.time(), usegmt=True)
        v2 = _encode(build_v2())
        self._v2 = SpecDocument(v2, _etag(v2))
        self._v3: dict[str, SpecDocument] = {}
        for path in V3_DOCUMENT_PATHS:
            body = _encode(build_v3(path))
            self._v3[path] = SpecDocument(body, _etag(body))
        discovery = {
            "paths": {path: {"serverRelativeURL": self._server_relative_url(path)} for path in V3_DOCUMENT_PATHS}
        }
        body = _encode(discovery)
        self._v3_discovery = SpecDocument(body, _etag(body))

    def _server_relative_url(self, path: str) -> str:
        return f"/openapi/v3/{path}?{urllib.parse.urlencode({'hash': self._v3[path].etag})}"

    async def v2(self, request: web.Request) -> web.StreamResponse:
        return self._serve(request, self._v2)

    async def v3_discovery(self, request: web.Request) -> web.StreamResponse:
        return self._serve(request, self._v3_discovery, negotiate=False)

    async def v3_document(self, request: web.Request) -> web.StreamResponse:
        if not _accepts_json(request):
            return web.Response(status=406, headers={"Vary": "Accept"})
        path = request.match_info["path"]
        document = self._v3.get(path)
        if document is None:
            # handler3 writes nothing for a group it does not know: an empty 200.
            return web.Response(status=200, headers={"Vary": "Accept"})
        extra = {"Vary": "Accept"}
        wanted = request.query.get("hash", "")
        if wanted:
            if wanted != document.etag:
                location = self._server_relative_url(path)
                return web.Response(status=301, headers={"Location": location, "Vary": "Accept"})
            expires = email.utils.formatdate(time.time() + 365 * 24 * 3600, usegmt=True)
            extra.update({"Cache-Control": "public, immutable", "Expires": expires})
        return self._serve(request, document, negotiate=False, extra=extra)

    def _serve(
        self,
        request: web.Request,
        document: SpecDocument,
        *,
        negotiate: bool = True,
        extra: Mapping[str, str] | None = None,
    ) -> web.StreamResponse:
        headers = {"Vary": "Accept"} if negotiate else {}
        if negotiate and not _accepts_json(request):
            return web.Response(status=406, headers=headers)
        quoted = f'"{document.etag}"'
        headers.update({"Etag": quoted, "Last-Modified": self._last_modified, **(extra or {})})
        if request.headers.get("If-None-Match") == quoted:
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = JSON_CONTENT_TYPE
        return web.Response(body=document.body, headers=headers)


def _accepts_json(request: web.Request) -> bool:
    """kube-openapi's handlers: the first clause (in preference order) matching a served type wins;
    only JSON is served here. No Accept header means `*/*`."""
    for clause in parse_accept(request.headers.get("Accept", "") or "*/*"):
        if clause.type in ("application", "*") and clause.subtype in ("json", "*"):
            return True
    return False
