"""Delegated authentication and authorization for the HTTPS API, wired together.

What metrics-server gets from k8s.io/apiserver's DelegatingAuthenticationOptions and
DelegatingAuthorizationOptions (reference/metrics-server.md §6): kube-apiserver decides, through
TokenReview and SubjectAccessReview, and publishes the CAs and front-proxy header names in ConfigMap
kube-system/extension-apiserver-authentication. Flags override the ConfigMap per part, as upstream:
--client-ca-file replaces its `client-ca-file`, and --requestheader-client-ca-file replaces the
whole request-header part (CA, allowed names, header names). The ConfigMap is read at start (fatal
unless --authentication-tolerate-lookup-failure) and re-read every REFRESH_INTERVAL_SECONDS.
A request without credentials is system:anonymous on the --authorization-always-allow-paths (kubelet
probes) and a 401 on every other path (authn.py says why this differs from metrics-server).

TLS: the handshake asks for a client certificate without requiring one (CERT_OPTIONAL) and trusts
every CA ever configured; each request then decides which CA the certificate anchors to with the
*current* configuration (authn.py). Python's ssl cannot request a certificate without verifying it,
so a certificate from an unknown CA ends the handshake (TLS alert "unknown ca") instead of the
apiserver's 401; a certificate from a CA that was configured and later removed gets the 401.

Standalone mode: with neither kubeconfig flag and no in-cluster configuration there is no one to
ask; authentication and authorization are off and every request is allowed (logged at start).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from cryptography import x509

from kubemetrics.api.apiserver_client import ApiServerClient, ApiServerRequestError, resolve_connection
from kubemetrics.api.authn import (
    AuthenticationConfig,
    AuthenticationError,
    CertificateAuthority,
    RequestAuthenticator,
    RequestHeaderConfig,
    TokenReviewer,
    UserInfo,
)
from kubemetrics.api.authz import (
    PathAllowList,
    RequestAuthorizer,
    SubjectAccessReviewer,
    forbidden,
    request_attributes,
)
from kubemetrics.api.status import ApiStatusError, internal_error
from kubemetrics.inventory.kubeconfig import ApiServerConfig, KubeconfigError
from kubemetrics.options import DelegatedAuthOptions

log = logging.getLogger(__name__)

AUTH_CONFIG_MAP_NAMESPACE = "kube-system"
AUTH_CONFIG_MAP_NAME = "extension-apiserver-authentication"
AUTH_CONFIG_MAP_PATH = f"/api/v1/namespaces/{AUTH_CONFIG_MAP_NAMESPACE}/configmaps/{AUTH_CONFIG_MAP_NAME}"
REFRESH_INTERVAL_SECONDS = 60.0
# Where the authenticated user is left for handlers.
USER_KEY = web.RequestKey("kubemetrics.user", UserInfo)


class DelegatedAuthError(RuntimeError):
    """Delegated auth cannot start (unreadable kubeconfig or CA file, ConfigMap lookup failed)."""


def unauthorized() -> ApiStatusError:
    """errors.NewUnauthorized("Unauthorized"): no details."""
    return ApiStatusError(code=401, reason="Unauthorized", message="Unauthorized")


def authentication_config(options: DelegatedAuthOptions, config_map: Mapping[str, str] | None) -> AuthenticationConfig:
    """The CA-based configuration from the flags and the ConfigMap's data (None: not looked up or absent)."""
    data = config_map or {}
    client_ca: CertificateAuthority | None = None
    if options.client_ca_file:
        client_ca = CertificateAuthority(_read(options.client_ca_file), options.client_ca_file)
    elif data.get("client-ca-file"):
        client_ca = CertificateAuthority(data["client-ca-file"].encode(), _config_map_source("client-ca-file"))
    request_header: RequestHeaderConfig | None = None
    if options.requestheader_client_ca_file:
        request_header = RequestHeaderConfig(
            authority=CertificateAuthority(
                _read(options.requestheader_client_ca_file), options.requestheader_client_ca_file
            ),
            allowed_names=options.requestheader_allowed_names,
            username_headers=options.requestheader_username_headers,
            group_headers=options.requestheader_group_headers,
            extra_headers_prefixes=options.requestheader_extra_headers_prefix,
        )
    elif data.get("requestheader-client-ca-file"):
        request_header = RequestHeaderConfig(
            authority=CertificateAuthority(
                data["requestheader-client-ca-file"].encode(), _config_map_source("requestheader-client-ca-file")
            ),
            allowed_names=_json_list(data, "requestheader-allowed-names"),
            username_headers=_json_list(data, "requestheader-username-headers"),
            group_headers=_json_list(data, "requestheader-group-headers"),
            extra_headers_prefixes=_json_list(data, "requestheader-extra-headers-prefix"),
            uid_headers=_json_list(data, "requestheader-uid-headers"),
        )
    return AuthenticationConfig(client_ca=client_ca, request_header=request_header)


def needs_config_map(options: DelegatedAuthOptions) -> bool:
    """Upstream looks the ConfigMap up only for what the flags leave unset."""
    if options.authentication_skip_lookup:
        return False
    return not options.client_ca_file or not options.requestheader_client_ca_file


class DelegatedAuth:
    """The authentication/authorization middleware, the TLS set-up it needs, and the ConfigMap refresh.

    Use: `auth = await DelegatedAuth.start(options)` (None in standalone mode), pass
    `auth.middleware` and `auth.configure_tls` to start_api_server, `await auth.close()` at exit."""

    def __init__(
        self,
        options: DelegatedAuthOptions,
        authentication_client: ApiServerClient,
        authorization_client: ApiServerClient,
        config: AuthenticationConfig,
    ) -> None:
        self._options = options
        self._authentication_client = authentication_client
        self._authorization_client = authorization_client
        self.config = config
        self._tls_contexts: list[ssl.SSLContext] = []
        self._handshake_authorities: set[CertificateAuthority] = set()
        reviewer = TokenReviewer(authentication_client, options.authentication_token_webhook_cache_ttl_seconds)
        # Anonymous requests are accepted exactly where they are then always authorized: the probes.
        anonymous_paths = PathAllowList(options.authorization_always_allow_paths)
        self.authenticator = RequestAuthenticator(lambda: self.config, reviewer.review, anonymous_paths.allows)
        self.authorizer = RequestAuthorizer(
            options.authorization_always_allow_paths,
            SubjectAccessReviewer(
                authorization_client,
                options.authorization_webhook_cache_authorized_ttl_seconds,
                options.authorization_webhook_cache_unauthorized_ttl_seconds,
            ),
        )
        self._refresh_task: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls, options: DelegatedAuthOptions, environ: Mapping[str, str] | None = None
    ) -> DelegatedAuth | None:
        """Resolves the kube-apiserver connections, reads the ConfigMap, starts its refresh."""
        try:
            authentication = resolve_connection(options.authentication_kubeconfig, environ)
            authorization = resolve_connection(options.authorization_kubeconfig, environ)
        except KubeconfigError as err:
            raise DelegatedAuthError(str(err)) from err
        if authentication is None and authorization is None:
            log.warning(
                "no --authentication-kubeconfig/--authorization-kubeconfig and not running in a cluster: "
                "authentication and authorization are OFF, every request is allowed (standalone mode)"
            )
            return None
        if authentication is None or authorization is None:
            missing = "--authentication-kubeconfig" if authentication is None else "--authorization-kubeconfig"
            raise DelegatedAuthError(f"{missing} is not set and there is no in-cluster configuration")
        authentication_client, authorization_client = _clients(authentication, authorization)
        try:
            config_map = await _first_config_map(options, authentication_client)
            try:
                config = authentication_config(options, config_map)
            except (OSError, ValueError) as err:
                raise DelegatedAuthError(f"cannot load the authentication configuration: {err}") from err
        except BaseException:
            await _close_clients(authentication_client, authorization_client)
            raise
        auth = cls(options, authentication_client, authorization_client, config)
        log.info(
            "delegated authentication via %s, authorization via %s; %s",
            authentication.origin,
            authorization.origin,
            describe(config),
        )
        if needs_config_map(options):
            auth._refresh_task = asyncio.create_task(auth._refresh_forever(), name="authentication config refresh")
        return auth

    async def close(self) -> None:
        if self._refresh_task is not None:
            self._refresh_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh_task
        await _close_clients(self._authentication_client, self._authorization_client)

    @property
    def middlewares(self) -> tuple[Middleware, ...]:
        return (self.middleware,)

    def configure_tls(self, context: ssl.SSLContext) -> None:
        """Ask for (without requiring) a client certificate, trusting the configured CAs."""
        self._tls_contexts.append(context)
        self._trust_for_handshake(context, self.config.handshake_authorities())

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            user = await self.authenticator.authenticate(peer_certificate(request), request.headers, request.path)
        except AuthenticationError as err:
            log.info("unable to authenticate %s %s from %s: %s", request.method, request.path, request.remote, err)
            raise unauthorized() from err
        except ApiServerRequestError as err:
            log.error("unable to authenticate %s %s: TokenReview failed: %s", request.method, request.path, err)
            raise unauthorized() from err
        attributes = request_attributes(request.method, request.path, request.query)
        try:
            decision = await self.authorizer.authorize(user, attributes)
        except ApiServerRequestError as err:
            log.error("authorization of %s %s for %s failed: %s", request.method, request.path, user.name, err)
            raise internal_error(str(err)) from err
        if not decision.allowed:
            raise forbidden(user, attributes, decision.reason)
        request[USER_KEY] = user
        return await handler(request)

    async def refresh(self) -> bool:
        """Re-reads the ConfigMap (and CA files); True when the configuration changed."""
        config_map = await _read_config_map(self._authentication_client)
        updated = authentication_config(self._options, config_map)
        if updated == self.config:
            return False
        log.info("authentication configuration changed: %s (was: %s)", describe(updated), describe(self.config))
        self.config = updated
        for context in self._tls_contexts:
            self._trust_for_handshake(context, updated.handshake_authorities())
        return True

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_INTERVAL_SECONDS)
            try:
                await self.refresh()
            except (ApiServerRequestError, OSError, ValueError) as err:
                log.warning("cannot refresh the authentication configuration (keeping the current one): %s", err)

    def _trust_for_handshake(self, context: ssl.SSLContext, authorities: list[CertificateAuthority]) -> None:
        # Trust only grows: an SSLContext cannot forget a CA. Certificates of a removed CA still pass
        # the handshake and are refused per request against the current configuration.
        new = [authority for authority in authorities if authority not in self._handshake_authorities]
        for authority in new:
            context.load_verify_locations(cadata=authority.pem.decode("ascii"))
            self._handshake_authorities.add(authority)
        if self._handshake_authorities:
            context.verify_mode = ssl.CERT_OPTIONAL


def peer_certificate(request: web.Request) -> x509.Certificate | None:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der) if der else None


def describe(config: AuthenticationConfig) -> str:
    client = f"client CA from {config.client_ca.source}" if config.client_ca else "no client CA"
    header = config.request_header
    if header is None:
        return f"{client}, no request-header CA"
    names = ",".join(header.allowed_names) or "any"
    return (
        f"{client}, request-header CA from {header.authority.source} "
        f"(allowed names {names}; user headers {','.join(header.username_headers)}, "
        f"group headers {','.join(header.group_headers)}, extra prefixes {','.join(header.extra_headers_prefixes)})"
    )


async def _first_config_map(options: DelegatedAuthOptions, client: ApiServerClient) -> Mapping[str, str] | None:
    if not needs_config_map(options):
        return None
    try:
        return await _read_config_map(client)
    except ApiServerRequestError as err:
        hint = ""
        if err.status == 403:
            hint = (
                f" (usually fixed with 'kubectl create rolebinding -n {AUTH_CONFIG_MAP_NAMESPACE} ROLEBINDING_NAME "
                "--role=extension-apiserver-authentication-reader --serviceaccount=YOUR_NS:YOUR_SA')"
            )
        if options.authentication_tolerate_lookup_failure:
            log.warning(
                "cannot look up the in-cluster authentication configuration%s: %s; continuing without it, "
                "which may treat all requests as anonymous",
                hint,
                err,
            )
            return None
        raise DelegatedAuthError(f"unable to load configmap based request-header-client-ca-file{hint}: {err}") from err


async def _read_config_map(client: ApiServerClient) -> Mapping[str, str] | None:
    """The ConfigMap's data; None when it does not exist (as upstream, not an error)."""
    try:
        document: dict[str, Any] = await client.get_json(AUTH_CONFIG_MAP_PATH)
    except ApiServerRequestError as err:
        if err.status == 404:
            return None
        raise
    data = document.get("data") or {}
    return {str(key): str(value) for key, value in data.items()}


def _clients(
    authentication: ApiServerConfig, authorization: ApiServerConfig
) -> tuple[ApiServerClient, ApiServerClient]:
    first = ApiServerClient(authentication)
    # One session when both point at the same place, as is usual.
    return first, first if authorization == authentication else ApiServerClient(authorization)


async def _close_clients(first: ApiServerClient, second: ApiServerClient) -> None:
    await first.close()
    if second is not first:
        await second.close()


def _json_list(data: Mapping[str, str], key: str) -> tuple[str, ...]:
    text = data.get(key, "")
    if not text:
        return ()
    try:
        values = json.loads(text)
    except ValueError as err:
        raise ValueError(f"{_config_map_source(key)} is not a JSON list: {err}") from err
    if not isinstance(values, list):
        raise ValueError(f"{_config_map_source(key)} is not a JSON list")
    return tuple(str(value) for value in values)


def _config_map_source(key: str) -> str:
    return f"configmap {AUTH_CONFIG_MAP_NAMESPACE}/{AUTH_CONFIG_MAP_NAME} key {key}"


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise OSError(f"cannot read {path}: {err}") from err
