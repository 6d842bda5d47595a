"""Who is asking: the generic apiserver's delegated authenticator chain, in Python.

In order, as `DelegatingAuthenticatorConfig.New` builds it (k8s.io/apiserver), a union where the
first success wins:
1. request header (front proxy): a client certificate that verifies against the
   requestheader CA *and* whose CN is in requestheader-allowed-names (empty = any) lets the
   X-Remote-User / X-Remote-Group / X-Remote-Extra-* headers name the user. The headers are
   ignored on any other connection, so no client can impersonate anyone by sending them.
2. client certificate: one that verifies against the client CA is user CN, groups O.
3. bearer token: `Authorization: Bearer …` goes to a TokenReview, cached for the TTL.
A certificate that verifies against neither CA, a front-proxy certificate with a CN not allowed, or
a token the TokenReview rejects with an error is a 401, not anonymous ("a bad credential is not
anonymous"). Authenticated users get the `system:authenticated` group (the chain's
AuthenticatedGroupAdder).

With no credential at all the request is `system:anonymous` only on the paths anonymous access is
allowed on (the --authorization-always-allow-paths: the probes a kubelet sends without credentials),
and a 401 everywhere else. This is kube-apiserver's structured authentication configuration with
`anonymous: {enabled: true, conditions: [{path: /healthz}, ...]}`, not metrics-server's default of
anonymous everywhere with SubjectAccessReview deciding: a client that forgot its credentials is told
so (401) instead of being told that system:anonymous may not list pods (403).
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store, VerificationError
from multidict import CIMultiDictProxy

from kubemetrics.api.review_cache import ReviewCache

log = logging.getLogger(__name__)

ANONYMOUS_USER = "system:anonymous"
UNAUTHENTICATED_GROUP = "system:unauthenticated"
AUTHENTICATED_GROUP = "system:authenticated"
TOKEN_REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


ANONYMOUS = UserInfo(ANONYMOUS_USER, groups=(UNAUTHENTICATED_GROUP,))


class AuthenticationError(Exception):
    """A credential was presented and is not valid: the request is a 401."""


class CertificateAuthority:
    """A CA bundle (PEM) and what it came from, able to tell whether it anchors a client certificate."""

    def __init__(self, pem: bytes, source: str) -> None:
        self.pem = pem
        self.source = source
        try:
            self.certificates = tuple(x509.load_pem_x509_certificates(pem))
        except ValueError as err:
            raise ValueError(f"{source}: no usable PEM certificates: {err}") from err
        self._store = Store(list(self.certificates))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CertificateAuthority) and other.pem == self.pem

    def __hash__(self) -> int:
        return hash(self.pem)

    def __repr__(self) -> str:
        return f"CertificateAuthority({self.source}, {len(self.certificates)} certificates)"

    def verify_client(self, leaf: x509.Certificate, now: datetime.datetime | None = None) -> None:
        """Raises AuthenticationError unless `leaf` chains to this bundle and may authenticate a
        client (extended key usage clientAuth, or none, as Go's x509 verification requires)."""
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(now or datetime.datetime.now(datetime.UTC))
            # Go's verifier accepts client certificates without SANs or key identifiers; the webpki
            # profile for end entities would not.
            .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all())
            .build_client_verifier()
        )
        try:
            verifier.verify(leaf, [])
        except VerificationError as err:
            raise AuthenticationError(
                f"x509: certificate {_subject(leaf)} is not signed by an authority of {self.source}: {err}"
            ) from err
        try:
            usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            return
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usages and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usages:
            raise AuthenticationError(f"x509: certificate {_subject(leaf)} specifies an incompatible key usage")


@dataclass(frozen=True, slots=True)
class RequestHeaderConfig:
    authority: CertificateAuthority
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ("x-remote-user",)
    group_headers: tuple[str, ...] = ("x-remote-group",)
    extra_headers_prefixes: tuple[str, ...] = ("x-remote-extra-",)
    uid_headers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthenticationConfig:
    """The CA-based parts of the chain; replaced whole when the ConfigMap changes."""

    client_ca: CertificateAuthority | None = None
    request_header: RequestHeaderConfig | None = None

    def handshake_authorities(self) -> list[CertificateAuthority]:
        authorities = [self.client_ca] if self.client_ca else []
        if self.request_header:
            authorities.append(self.request_header.authority)
        return authorities


@dataclass(frozen=True, slots=True)
class TokenReviewResult:
    user: UserInfo | None
    error: str = ""


class JsonPoster(Protocol):
    async def post_json(self, path: str, body: Mapping[str, object]) -> dict[str, Any]: ...


class TokenReviewer:
    """TokenReview (authentication.k8s.io/v1), answers cached for `ttl_seconds` (success and
    failure alike, as the delegating authenticator's cache) keyed by the token's SHA-256, never
    the token itself. Network failures are not cached."""

    def __init__(self, apiserver: JsonPoster, ttl_seconds: float, clock: Callable[[], float] | None = None) -> None:
        self._apiserver = apiserver
        ttl = ttl_seconds
        self._cache: ReviewCache[bytes, TokenReviewResult] = (
            ReviewCache(lambda result: ttl, clock) if clock else ReviewCache(lambda result: ttl)
        )

    async def review(self, token: str) -> TokenReviewResult:
        key = hashlib.sha256(token.encode()).digest()
        return await self._cache.get(key, lambda: self._review_now(token))

    async def _review_now(self, token: str) -> TokenReviewResult:
        answer = await self._apiserver.post_json(
            TOKEN_REVIEW_PATH,
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}},
        )
        status = answer.get("status") or {}
        if not status.get("authenticated"):
            return TokenReviewResult(None, str(status.get("error") or ""))
        user = status.get("user") or {}
        extra = {str(k): tuple(str(v) for v in values or ()) for k, values in (user.get("extra") or {}).items()}
        return TokenReviewResult(
            UserInfo(
                name=str(user.get("username", "")),
                uid=str(user.get("uid", "")),
                groups=tuple(str(g) for g in user.get("groups") or ()),
                extra=extra,
            )
        )


class RequestAuthenticator:
    def __init__(
        self,
        config: Callable[[], AuthenticationConfig],
        token_review: Callable[[str], Awaitable[TokenReviewResult]] | None,
        anonymous_allowed_on: Callable[[str], bool],
    ) -> None:
        self._config = config
        self._token_review = token_review
        self._anonymous_allowed_on = anonymous_allowed_on

    async def authenticate(
        self, peer_certificate: x509.Certificate | None, headers: CIMultiDictProxy[str], path: str
    ) -> UserInfo:
        """The user; ANONYMOUS when no credential was presented and `path` allows anonymous requests.
        AuthenticationError for a bad credential, or for none on any other path."""
        config = self._config()
        errors: list[str] = []
        if peer_certificate is not None:
            for attempt in (self._by_request_header, self._by_client_certificate):
                try:
                    user = attempt(config, peer_certificate, headers)
                except AuthenticationError as err:
                    errors.append(str(err))
                    continue
                if user is not None:
                    return _with_authenticated_group(user)
        token = _bearer_token(headers)
        if token and self._token_review is not None:
            result = await self._token_review(token)
            if result.user is not None:
                return _with_authenticated_group(result.user)
            if result.error:
                errors.append(result.error)
        if errors:
            raise AuthenticationError("; ".join(errors))
        if not self._anonymous_allowed_on(path):
            raise AuthenticationError(f"no credentials, and anonymous requests are not allowed on {path}")
        return ANONYMOUS

    @staticmethod
    def _by_request_header(
        config: AuthenticationConfig, leaf: x509.Certificate, headers: CIMultiDictProxy[str]
    ) -> UserInfo | None:
        request_header = config.request_header
        if request_header is None:
            return None
        request_header.authority.verify_client(leaf)
        common_name = _common_name(leaf)
        if request_header.allowed_names and common_name not in request_header.allowed_names:
            raise AuthenticationError(f"x509: subject with cn={common_name} is not in the allowed list")
        name = _first_value(headers, request_header.username_headers)
        if not name:
            return None
        return UserInfo(
            name=name,
            uid=_first_value(headers, request_header.uid_headers),
            groups=tuple(_all_values(headers, request_header.group_headers)),
            extra=_extra(headers, request_header.extra_headers_prefixes),
        )

    @staticmethod
    def _by_client_certificate(
        config: AuthenticationConfig, leaf: x509.Certificate, headers: CIMultiDictProxy[str]
    ) -> UserInfo | None:
        if config.client_ca is None:
            return None
        config.client_ca.verify_client(leaf)
        common_name = _common_name(leaf)
        if not common_name:
            return None
        organizations = [str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        return UserInfo(name=common_name, groups=tuple(organizations))


def _with_authenticated_group(user: UserInfo) -> UserInfo:
    if AUTHENTICATED_GROUP in user.groups or UNAUTHENTICATED_GROUP in user.groups:
        return user
    return UserInfo(user.name, user.uid, (*user.groups, AUTHENTICATED_GROUP), user.extra)


def _bearer_token(headers: CIMultiDictProxy[str]) -> str:
    scheme, _, token = headers.get("Authorization", "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _first_value(headers: CIMultiDictProxy[str], names: Sequence[str]) -> str:
    for name in names:
        for value in headers.getall(name, ()):
            if value:
                return value
    return ""


def _all_values(headers: CIMultiDictProxy[str], names: Sequence[str]) -> list[str]:
    return [value for name in names for value in headers.getall(name, ())]


def _extra(headers: CIMultiDictProxy[str], prefixes: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """X-Remote-Extra-<key>: the key is lower-cased and percent-decoded (keys such as
    `authentication.kubernetes.io/pod-name` travel escaped), every value kept."""
    extra: dict[str, list[str]] = {}
    lowered = tuple(p.lower() for p in prefixes)
    for header, value in headers.items():
        lower = header.lower()
        for prefix in lowered:
            if lower.startswith(prefix) and len(lower) > len(prefix):
                key = urllib.parse.unquote(lower[len(prefix) :]).lower()
                extra.setdefault(key, []).append(value)
                break
    return {key: tuple(values) for key, values in extra.items()}


def _common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def _subject(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(empty subject)"
