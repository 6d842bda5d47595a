"""May they: the generic apiserver's delegated authorizer chain, in Python.

A union, in order (DelegatingAuthorizationOptions): the `system:masters` group is always allowed
(how the kube-aggregator's availability probe passes without a review, trap 14); paths in
--authorization-always-allow-paths are allowed (exact, or `prefix*`); everything else is a
SubjectAccessReview (authorization.k8s.io/v1), its answers cached (allowed and denied each for
their own TTL). Request attributes follow the apiserver's RequestInfoFactory: metrics API paths are
resource requests (`nodes`/`pods` in `metrics.k8s.io`, verb get, list or watch), everything else a
non-resource path with the lower-cased HTTP method as the verb.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from kubemetrics.api.authn import JsonPoster, UserInfo
from kubemetrics.api.review_cache import ReviewCache
from kubemetrics.api.status import ApiStatusError, StatusDetails, go_quote

log = logging.getLogger(__name__)

ALWAYS_ALLOWED_GROUP = "system:masters"
SUBJECT_ACCESS_REVIEW_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
_RESOURCE_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_TRUE_VALUES = frozenset({"1", "t", "T", "true", "TRUE", "True"})  # Go strconv.ParseBool


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    verb: str
    path: str
    resource_request: bool = False
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    def review_attributes(self) -> dict[str, object]:
        """The SubjectAccessReview spec's resourceAttributes or nonResourceAttributes."""
        if not self.resource_request:
            return {"nonResourceAttributes": {"path": self.path, "verb": self.verb}}
        resource: dict[str, str] = {
            "namespace": self.namespace,
            "verb": self.verb,
            "group": self.api_group,
            "version": self.api_version,
            "resource": self.resource,
            "subresource": self.subresource,
            "name": self.name,
        }
        return {"resourceAttributes": {k: v for k, v in resource.items() if v}}


def request_attributes(method: str, path: str, query: Mapping[str, str]) -> RequestAttributes:
    """RequestInfoFactory.NewRequestInfo for the /apis and /api prefixes."""
    verb = method.lower()
    parts = [part for part in path.strip("/").split("/")] if path.strip("/") else []
    if not parts or parts[0] not in ("apis", "api"):
        return RequestAttributes(verb, path)
    prefix, rest = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if len(rest) < 3:
            return RequestAttributes(verb, path)
        group, rest = rest[0], rest[1:]
    elif len(rest) < 2:
        return RequestAttributes(verb, path)
    version, rest = rest[0], rest[1:]
    resource_verb = _RESOURCE_VERBS.get(method.upper(), verb)
    if rest and rest[0] == "watch":
        resource_verb, rest = "watch", rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2:
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if not name and resource_verb == "get":
        resource_verb = "watch" if query.get("watch", "") in _TRUE_VALUES else "list"
        name = _exact_name(query.get("fieldSelector", ""))
    return RequestAttributes(
        verb=resource_verb,
        path=path,
        resource_request=True,
        api_group=group,
        api_version=version,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
    )


def _exact_name(field_selector: str) -> str:
    """A list narrowed to one object by `metadata.name=x` is authorized as that object."""
    for term in field_selector.split(","):
        key, operator, value = term.partition("==") if "==" in term else term.partition("=")
        if operator and key.strip() == "metadata.name" and not key.endswith("!"):
            return value.strip()
    return ""


class PathAllowList:
    """--authorization-always-allow-paths: exact paths, and `prefix*` patterns."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self._exact = frozenset(p for p in patterns if not p.endswith("*"))
        self._prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))

    def allows(self, path: str) -> bool:
        return path in self._exact or any(path.startswith(prefix) for prefix in self._prefixes)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""


class SubjectAccessReviewer:
    def __init__(
        self,
        apiserver: JsonPoster,
        allowed_ttl_seconds: float,
        denied_ttl_seconds: float,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._apiserver = apiserver

        def ttl_of(decision: Decision) -> float:
            return allowed_ttl_seconds if decision.allowed else denied_ttl_seconds

        self._cache: ReviewCache[str, Decision] = ReviewCache(ttl_of, clock) if clock else ReviewCache(ttl_of)

    async def review(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
        spec: dict[str, object] = {
            **attributes.review_attributes(),
            "user": user.name,
            "groups": list(user.groups),
        }
        if user.extra:
            spec["extra"] = {key: list(values) for key, values in user.extra.items()}
        if user.uid:
            spec["uid"] = user.uid
        key = json.dumps(spec, sort_keys=True, separators=(",", ":"))
        return await self._cache.get(key, lambda: self._review_now(spec))

    async def _review_now(self, spec: dict[str, object]) -> Decision:
        answer = await self._apiserver.post_json(
            SUBJECT_ACCESS_REVIEW_PATH,
            {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec},
        )
        status = answer.get("status") or {}
        reason = str(status.get("reason") or "")
        if status.get("evaluationError"):
            log.debug("SubjectAccessReview evaluation error: %s", status["evaluationError"])
        return Decision(bool(status.get("allowed")) and not status.get("denied"), reason)


class RequestAuthorizer:
    def __init__(self, always_allow_paths: Sequence[str], reviewer: SubjectAccessReviewer) -> None:
        self._paths = PathAllowList(always_allow_paths)
        self._reviewer = reviewer

    async def authorize(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
        """Raises ApiServerRequestError when the review itself fails (a 500, as the apiserver)."""
        if ALWAYS_ALLOWED_GROUP in user.groups:
            return Decision(True, f"group {ALWAYS_ALLOWED_GROUP} is always allowed")
        if self._paths.allows(attributes.path):
            return Decision(True, "path is always allowed")
        decision = await self._reviewer.review(user, attributes)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "SubjectAccessReview: user %s (groups %s) %s %s -> %s%s",
                go_quote(user.name),
                ",".join(user.groups),
                attributes.verb,
                _describe(attributes),
                "allowed" if decision.allowed else "denied",
                f" ({decision.reason})" if decision.reason else "",
            )
        return decision


def forbidden(user: UserInfo, attributes: RequestAttributes, reason: str = "") -> ApiStatusError:
    """responsewriters.Forbidden: errors.NewForbidden(group/resource, name, forbiddenMessage[: reason])."""
    who = f"User {go_quote(user.name)} cannot {attributes.verb}"
    if attributes.resource_request:
        resource = attributes.resource + (f"/{attributes.subresource}" if attributes.subresource else "")
        where = f"in the namespace {go_quote(attributes.namespace)}" if attributes.namespace else "at the cluster scope"
        cause = f"{who} resource {go_quote(resource)} in API group {go_quote(attributes.api_group)} {where}"
    else:
        cause = f"{who} path {go_quote(attributes.path)}"
    if reason:
        cause = f"{cause}: {reason}"
    qualified = f"{attributes.resource}.{attributes.api_group}" if attributes.api_group else attributes.resource
    if not attributes.resource_request or not qualified:
        message = f"forbidden: {cause}"
        details = StatusDetails()
    elif attributes.name:
        message = f"{qualified} {go_quote(attributes.name)} is forbidden: {cause}"
        details = StatusDetails(name=attributes.name, group=attributes.api_group, kind=attributes.resource)
    else:
        message = f"{qualified} is forbidden: {cause}"
        details = StatusDetails(group=attributes.api_group, kind=attributes.resource)
    return ApiStatusError(code=403, reason="Forbidden", message=message, details=details)


def _describe(attributes: RequestAttributes) -> str:
    if not attributes.resource_request:
        return f"path {attributes.path}"
    target = f"{attributes.resource}.{attributes.api_group}" if attributes.api_group else attributes.resource
    if attributes.name:
        target += f" {attributes.name}"
    return target + (f" in namespace {attributes.namespace}" if attributes.namespace else " (cluster scope)")
