"""Delegated authentication and authorization of the HTTPS API (api/auth.py, authn.py, authz.py).

The CAs and client certificates are made with trustme. kube-apiserver is played by a small aiohttp
server on loopback that answers TokenReview and SubjectAccessReview from tables and serves the
extension-apiserver-authentication ConfigMap; it records every review it receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from kubemetrics.api import auth as auth_module
from kubemetrics.api.auth import DelegatedAuth, DelegatedAuthError, authentication_config
from kubemetrics.api.authn import UserInfo
from kubemetrics.api.authz import PathAllowList, RequestAttributes, forbidden, request_attributes
from kubemetrics.api.review_cache import ReviewCache
from kubemetrics.api.server import start_api_server
from kubemetrics.options import DelegatedAuthOptions, add_serve_flags, serve_options_from
from test_api_support import api_context

NODES = "/apis/metrics.k8s.io/v1beta1/nodes"


# --------------------------------------------------------------------------------------------
# A fake kube-apiserver


@dataclass
class FakeApiServer:
    """TokenReview: `tokens` maps a token to its user (or to an error string). SubjectAccessReview:
    allowed when (user, verb, resource-or-path) is in `grants`. ConfigMap: `config_map` data, or
    `config_map_status` as the HTTP status."""

    tokens: dict[str, dict[str, Any] | str] = field(default_factory=dict)
    grants: set[tuple[str, str, str]] = field(default_factory=set)
    config_map: dict[str, str] = field(default_factory=dict)
    config_map_status: int = 200
    sar_status: int = 200
    token_reviews: list[dict[str, Any]] = field(default_factory=list)
    access_reviews: list[dict[str, Any]] = field(default_factory=list)
    config_map_reads: int = 0
    review_delay: float = 0.0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/apis/authentication.k8s.io/v1/tokenreviews", self._token_review)
        app.router.add_post("/apis/authorization.k8s.io/v1/subjectaccessreviews", self._access_review)
        app.router.add_get(auth_module.AUTH_CONFIG_MAP_PATH, self._config_map)
        return app

    async def _token_review(self, request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer front-sa-token"
        review = await request.json()
        self.token_reviews.append(review)
        await asyncio.sleep(self.review_delay)
        known = self.tokens.get(review["spec"]["token"])
        if isinstance(known, dict):
            status: dict[str, Any] = {"authenticated": True, "user": known}
        else:
            status = {"authenticated": False, "error": known} if known else {"authenticated": False}
        return web.json_response({**review, "status": status})

    async def _access_review(self, request: web.Request) -> web.Response:
        review = await request.json()
        self.access_reviews.append(review["spec"])
        if self.sar_status != 200:
            return web.json_response({"kind": "Status", "message": "etcd is sad"}, status=self.sar_status)
        spec = review["spec"]
        if "resourceAttributes" in spec:
            target = spec["resourceAttributes"]["resource"]
            verb = spec["resourceAttributes"]["verb"]
        else:
            target = spec["nonResourceAttributes"]["path"]
            verb = spec["nonResourceAttributes"]["verb"]
        allowed = (spec["user"], verb, target) in self.grants
        return web.json_response({**review, "status": {"allowed": allowed}})

    async def _config_map(self, request: web.Request) -> web.Response:
        self.config_map_reads += 1
        if self.config_map_status != 200:
            return web.json_response({"kind": "Status", "message": "no"}, status=self.config_map_status)
        return web.json_response({"kind": "ConfigMap", "data": self.config_map})


@dataclass
class Pki:
    client_ca: trustme.CA
    front_proxy_ca: trustme.CA
    other_ca: trustme.CA
    serving_ca: trustme.CA

    def config_map(self, allowed_names: list[str]) -> dict[str, str]:
        return {
            "client-ca-file": self.client_ca.cert_pem.bytes().decode(),
            "requestheader-client-ca-file": self.front_proxy_ca.cert_pem.bytes().decode(),
            "requestheader-allowed-names": json.dumps(allowed_names),
            "requestheader-username-headers": '["X-Remote-User"]',
            "requestheader-group-headers": '["X-Remote-Group"]',
            "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
        }


@pytest.fixture
def pki() -> Pki:
    return Pki(trustme.CA(), trustme.CA(), trustme.CA(), trustme.CA())


@contextlib.asynccontextmanager
async def fake_apiserver(fake: FakeApiServer, tmp_path: Path) -> AsyncIterator[Path]:
    """Runs `fake` on loopback and yields a kubeconfig pointing at it (plain HTTP, bearer token)."""
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    kubeconfig = tmp_path / "front.kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "front-sa-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    try:
        yield kubeconfig
    finally:
        await runner.cleanup()


@dataclass
class Front:
    """The API server with delegated auth, and a way to call it with any client certificate."""

    port: int
    serving_ca: Path
    auth: DelegatedAuth

    async def get(
        self,
        path: str,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        cert: trustme.LeafCert | None = None,
    ) -> tuple[int, Any]:
        context = ssl.create_default_context(cafile=str(self.serving_ca))
        if cert is not None:
            with cert.private_key_and_cert_chain_pem.tempfile() as pem:
                context.load_cert_chain(pem)
        connector = aiohttp.TCPConnector(ssl=context, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(f"https://127.0.0.1:{self.port}{path}", headers=headers) as response:
                body = await response.read()
                try:
                    return response.status, json.loads(body)
                except ValueError:
                    return response.status, body.decode()


@contextlib.asynccontextmanager
async def front(tmp_path: Path, kubeconfig: Path, options: DelegatedAuthOptions | None = None) -> AsyncIterator[Front]:
    opts = options or DelegatedAuthOptions()
    delegated = await DelegatedAuth.start(
        DelegatedAuthOptions(
            **{
                **{f: getattr(opts, f) for f in DelegatedAuthOptions.__dataclass_fields__},
                "authentication_kubeconfig": str(kubeconfig),
                "authorization_kubeconfig": str(kubeconfig),
            }
        ),
        environ={},
    )
    assert delegated is not None
    ctx = api_context(tmp_path / "certs")
    runner = await start_api_server(ctx, middlewares=delegated.middlewares, configure_tls=delegated.configure_tls)
    try:
        yield Front(int(runner.addresses[0][1]), tmp_path / "certs" / "apiserver.crt", delegated)
    finally:
        await runner.cleanup()
        await delegated.close()


def front_proxy_cert(pki: Pki, common_name: str = "front-proxy-client") -> trustme.LeafCert:
    return pki.front_proxy_ca.issue_cert(common_name=common_name, organization_name="proxies")


UNAUTHORIZED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "code": 401,
}


# --------------------------------------------------------------------------------------------
# Authentication through HTTPS


async def test_front_proxy_certificate_lets_headers_name_the_user(tmp_path: Path, pki: Pki) -> None:
    fake = FakeApiServer(config_map=pki.config_map(["front-proxy-client"]), grants={("alice", "list", "nodes")})
    async with fake_apiserver(fake, tmp_path) as kubeconfig, front(tmp_path, kubeconfig) as api:
        status, body = await api.get(
            NODES,
            headers=[
                ("X-Remote-User", "alice"),
                ("X-Remote-Group", "dev"),
                ("X-Remote-Group", "ops"),
                ("X-Remote-Extra-Scopes", "a"),
                ("X-Remote-Extra-Scopes", "b"),
                ("X-Remote-Extra-Authentication.kubernetes.io%2fpod-name", "p1"),
            ],
            cert=front_proxy_cert(pki),
        )

    assert status == 200
    assert [item["metadata"]["name"] for item in body["items"]] == ["node-a", "node-b"]
    assert fake.access_reviews == [
        {
            "resourceAttributes": {
                "verb": "list",
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                "resource": "nodes",
            },
            "user": "alice",
            "groups": ["dev", "ops", "system:authenticated"],
            "extra": {"scopes": ["a", "b"], "authentication.kubernetes.io/pod-name": ["p1"]},
        }
    ]


async def test_front_proxy_certificate_with_a_name_not_allowed_is_unauthorized(tmp_path: Path, pki: Pki) -> None:
    fake = FakeApiServer(config_map=pki.config_map(["front-proxy-client"]))
    async with fake_apiserver(fake, tmp_path) as kubeconfig, front(tmp_path, kubeconfig) as api:
        status, body = await api.get(
            NODES,
            headers={"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters"},
            cert=front_proxy_cert(pki, common_name="intruder"),
        )

    assert (status, body) == (401, UNAUTHORIZED)
    assert fake.access_reviews == []


async def test_empty_allowed_names_accept_any_front_proxy_certificate(tmp_path: Path, pki: Pki) -> None:
    fake = FakeApiServer(config_map=pki.config_map([]))
    async with fake_apiserver(fake, tmp_path) as kubeconfig, front(tmp_path, kubeconfig) as api:
        status, _ = await api.get(
            NODES,
            headers={"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters"},
            cert=front_proxy_cert(pki, common_name="any-name"),
        )

    assert status == 200
    assert fake.access_reviews == []  # system:masters needs no review


async def test_remote_user_headers_without_a_front_proxy_certificate_are_ignored(tmp_path: Path, pki: Pki) -> None:
    fake = FakeApiServer(config_map=pki.config_map(["front-proxy-client"]))
    masters = {"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters"}
    async with fake_apiserver(fake, tmp_path) as kubeconfig, front(tmp_path, kubeconfig) as api:
        status, body = await api.get(NODES, headers=masters)
        probe = await api.get("/healthz", headers=masters)

    # No credential: a 401 on the API, and anonymous (not system:admin) on the probe.
    assert (status, body) == (401, UNAUTHORIZED)
    assert probe == (200, "ok")
    assert fake.access_reviews == []


async def test_client_ca_certificate_is_user_cn_groups_o_and_never_trusts_headers(tmp_path: Path, pki: Pki) -> None:
    fake = FakeApiServer(config_map=pki.config_map(["front-proxy-client"]), grants={("bob", "get", "nodes")})
    cert = pki.client_ca.issue_cert(common_name="bob", organization_name="team-b")
    async with fake_apiserver(fake, tmp_path) as kubeconfig, front(tmp_path, kubeconfig) as api:
        status, body = await api.get(
            f"{NODES}/node-a", headers={"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters"}, cert=cert
        )

    assert status == 200
    assert body["metadata"]["name"] == "node-a"
    assert [(r["user"], r["groups"], r["resourceAttributes"]["name"]) for r in fake.access_reviews] == [
        ("bob", ["team-b", "system:authenticated"], "node-a")
    ]


async def test_front_proxy_cn_from_the_client_ca_does_not_unlock_headers(tmp_path: Path, pki: Pki) -> None:
    fake = FakeApiServer(config_map=pki.config_map(["front-proxy-client"]))
    cert = pki.client_ca.issue_cert(common_name="front-proxy-client", organization_name="x")
    async with fake_apiserver(fake, tmp_path) as kubeconfig, front(tmp_path, kubeconfig) as api:
        status, body = await api.get(
            NODES, headers={"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters"}, cert=cert
        )

    assert status == 403
    assert 'User "front-proxy-client" cannot list' in body["message"]


async def test_certificate_from_an_unknown_authority_is_refused(tmp_path: Path, pki: Pki) -> None:
    fake = FakeApiServer(config_map=pki.config_map([]))
    cert = pki.other_ca.issue_cert(common_name="front-proxy-client", organization_name="x")
    async with fake_apiserver(fake, tmp_path) as kubeconfig, front(tmp_path, kubeconfig) as api:
        # Python's ssl verifies a requested certificate during the handshake: an alert, not a 401.
        with pytest.raises(aiohttp.ClientError):
            await api.get(NODES, headers={"X-Remote-User": "system:admin"}, cert=cert)
        still_serving, _ = await api.get("/healthz")

    assert still_serving == 200
    assert fake.access_reviews == []


async def test_certificate_of_a_removed_authority_is_unauthorized_after_refresh(tmp_path: Path, pki: Pki) -> None:
    fake = FakeApiServer(config_map=pki.config_map(["front-proxy-client"]))
    async with fake_apiserver(fake, tmp_path) as kubeconfig, front(tmp_path, kubeconfig) as api:
        headers = {"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters"}
        before, _ = await api.get(NODES, headers=headers, cert=front_proxy_cert(pki))
        fake.config_map["requestheader-client-ca-file"] = pki.other_ca.cert_pem.bytes().decode()
        changed = await api.auth.refresh()
        unchanged = await api.auth.refresh()
        after, body = await api.get(NODES, headers=headers, cert=front_proxy_cert(pki))
        new_ca_cert = pki.other_ca.issue_cert(common_name="front-proxy-client", organization_name="p")
        with_new_ca, _ = await api.get(NODES, headers=headers, cert=new_ca_cert)

    assert (before, changed, unchanged, after, body, with_new_ca) == (200, True, False, 401, UNAUTHORIZED, 200)


async def test_bearer_token_is_reviewed_once_per_ttl(tmp_path: Path, pki: Pki) -> None:
    fake = FakeApiServer(
        config_map=pki.config_map([]),
        tokens={"carol-token": {"username": "carol", "uid": "u-1", "groups": ["g1"]}},
        grants={("carol", "list", "pods")},
        review_delay=0.05,
    )
    async with fake_apiserver(fake, tmp_path) as kubeconfig, front(tmp_path, kubeconfig) as api:
        results = await asyncio.gather(
            *(
                api.get("/apis/metrics.k8s.io/v1beta1/pods", headers={"Authorization": "Bearer carol-token"})
                for _ in range(5)
            )
        )

    assert [status for status, _ in results] == [200] * 5
    assert len(fake.token_reviews) == 1
    assert fake.token_reviews[0]["spec"] == {"token": "carol-token"}
    assert fake.token_reviews[0]["apiVersion"] == "authentication.k8s.io/v1"
    assert len(fake.access_reviews) == 1
    assert fake.access_reviews[0]["uid"] == "u-1"
    assert fake.access_reviews[0]["groups"] == ["g1", "system:authenticated"]


async def test_rejected_token_is_unauthorized_not_anonymous(tmp_path: Path, pki: Pki) -> None:
    fake = FakeApiServer(config_map=pki.config_map([]), tokens={"bad": "token has expired"})
    async with fake_apiserver(fake, tmp_path) as kubeconfig, front(tmp_path, kubeconfig) as api:
        status, body = await api.get("/healthz", headers={"Authorization": "Bearer bad"})

    assert (status, body) == (401, UNAUTHORIZED)


async def test_unknown_token_without_error_is_anonymous(tmp_path: Path, pki: Pki) -> None:
    fake = FakeApiServer(config_map=pki.config_map([]))
    async with fake_apiserver(fake, tmp_path) as kubeconfig, front(tmp_path, kubeconfig) as api:
        probe = await api.get("/healthz", headers={"Authorization": "Bearer nobody"})
        metrics = await api.get(NODES, headers={"Authorization": "Bearer nobody"})

    assert probe == (200, "ok")
    assert metrics == (401, UNAUTHORIZED)
    assert [review["spec"]["token"] for review in fake.token_reviews] == ["nobody"]  # the second one is cached
    assert fake.access_reviews == []


async def test_anonymous_gets_probes_and_is_unauthorized_everywhere_else(tmp_path: Path, pki: Pki) -> None:
    # Even an RBAC grant to system:anonymous does not open other paths: anonymity ends at authentication.
    fake = FakeApiServer(
        config_map=pki.config_map([]),
        grants={("system:anonymous", "get", "/metrics"), ("system:anonymous", "list", "nodes")},
    )
    async with fake_apiserver(fake, tmp_path) as kubeconfig, front(tmp_path, kubeconfig) as api:
        probes = [await api.get(path) for path in ("/healthz", "/readyz", "/livez")]
        refused = [await api.get(path) for path in ("/metrics", NODES, "/apis/metrics.k8s.io/v1beta1", "/healthz/x")]

    assert probes == [(200, "ok")] * 3
    assert refused == [(401, UNAUTHORIZED)] * 4
    assert fake.access_reviews == []


async def test_replaced_always_allow_paths_move_anonymous_access_and_send_probes_to_review(
    tmp_path: Path, pki: Pki
) -> None:
    fake = FakeApiServer(
        config_map=pki.config_map([]),
        tokens={"dave-token": {"username": "dave"}},
        grants={("dave", "get", "/readyz"), ("system:anonymous", "get", "/readyz")},
    )
    options = DelegatedAuthOptions(authorization_always_allow_paths=("/metrics", "/debug/*"))
    dave = {"Authorization": "Bearer dave-token"}
    async with fake_apiserver(fake, tmp_path) as kubeconfig, front(tmp_path, kubeconfig, options) as api:
        metrics, _ = await api.get("/metrics")
        pprof, _ = await api.get("/debug/pprof/heap")
        anonymous_probes = [(await api.get(path))[0] for path in ("/healthz", "/readyz")]
        reviewed_probes = [(await api.get(path, headers=dave))[0] for path in ("/healthz", "/readyz")]

    assert (metrics, pprof) == (200, 404)
    assert anonymous_probes == [401, 401]
    assert reviewed_probes == [403, 200]
    assert [(r["user"], r["nonResourceAttributes"]["path"]) for r in fake.access_reviews] == [
        ("dave", "/healthz"),
        ("dave", "/readyz"),
    ]


async def test_review_failure_is_an_internal_error(tmp_path: Path, pki: Pki) -> None:
    fake = FakeApiServer(config_map=pki.config_map([]), sar_status=500)
    cert = pki.client_ca.issue_cert(common_name="bob", organization_name="team-b")
    async with fake_apiserver(fake, tmp_path) as kubeconfig, front(tmp_path, kubeconfig) as api:
        status, body = await api.get(NODES, cert=cert)

    assert status == 500
    assert body["reason"] == "InternalError"
    assert "subjectaccessreviews: HTTP 500: etcd is sad" in body["message"]


async def test_sar_answers_are_cached_for_their_ttl(tmp_path: Path, pki: Pki) -> None:
    fake = FakeApiServer(config_map=pki.config_map([]))
    options = DelegatedAuthOptions(
        authorization_webhook_cache_authorized_ttl_seconds=60, authorization_webhook_cache_unauthorized_ttl_seconds=0.3
    )
    cert = pki.client_ca.issue_cert(common_name="bob", organization_name="team-b")
    async with fake_apiserver(fake, tmp_path) as kubeconfig, front(tmp_path, kubeconfig, options) as api:
        first, _ = await api.get(NODES, cert=cert)
        fake.grants.add(("bob", "list", "nodes"))
        cached_denial, _ = await api.get(NODES, cert=cert)
        await asyncio.sleep(0.4)
        granted, _ = await api.get(NODES, cert=cert)
        fake.grants.clear()
        cached_grant, _ = await api.get(NODES, cert=cert)

    assert (first, cached_denial, granted, cached_grant) == (403, 403, 200, 200)
    assert len(fake.access_reviews) == 2


async def test_flags_override_the_config_map(tmp_path: Path, pki: Pki) -> None:
    fake = FakeApiServer(config_map=pki.config_map(["front-proxy-client"]))
    ca_file = tmp_path / "other-ca.pem"
    pki.other_ca.cert_pem.write_to_path(str(ca_file))
    options = DelegatedAuthOptions(
        requestheader_client_ca_file=str(ca_file),
        requestheader_allowed_names=("aggregator",),
        requestheader_username_headers=("X-Proxy-User",),
        requestheader_group_headers=("X-Proxy-Group",),
    )
    async with fake_apiserver(fake, tmp_path) as kubeconfig, front(tmp_path, kubeconfig, options) as api:
        cert = pki.other_ca.issue_cert(common_name="aggregator", organization_name="p")
        status, _ = await api.get(NODES, headers={"X-Proxy-User": "x", "X-Remote-Group": "system:masters"}, cert=cert)

    assert status == 403  # X-Remote-Group is the ConfigMap's group header, not the flags'
    assert [(r["user"], r["groups"]) for r in fake.access_reviews] == [("x", ["system:authenticated"])]
    assert fake.config_map_reads == 1  # the client CA still comes from the ConfigMap


# --------------------------------------------------------------------------------------------
# Start-up


async def test_without_any_apiserver_everything_is_allowed(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        started = await DelegatedAuth.start(DelegatedAuthOptions(), environ={})

    assert started is None
    assert "authentication and authorization are OFF" in caplog.text


async def test_config_map_lookup_failure_is_fatal_unless_tolerated(tmp_path: Path) -> None:
    fake = FakeApiServer(config_map_status=403)
    async with fake_apiserver(fake, tmp_path) as kubeconfig:
        base = {"authentication_kubeconfig": str(kubeconfig), "authorization_kubeconfig": str(kubeconfig)}
        with pytest.raises(DelegatedAuthError, match="extension-apiserver-authentication-reader"):
            await DelegatedAuth.start(DelegatedAuthOptions(**base), environ={})  # type: ignore[arg-type]
        tolerated = await DelegatedAuth.start(
            DelegatedAuthOptions(**base, authentication_tolerate_lookup_failure=True),  # type: ignore[arg-type]
            environ={},
        )
        assert tolerated is not None
        await tolerated.close()
        skipped = await DelegatedAuth.start(
            DelegatedAuthOptions(**base, authentication_skip_lookup=True),  # type: ignore[arg-type]
            environ={},
        )
        assert skipped is not None
        await skipped.close()

    assert tolerated.config.client_ca is None and tolerated.config.request_header is None
    assert fake.config_map_reads == 2


async def test_missing_config_map_is_not_an_error(tmp_path: Path) -> None:
    fake = FakeApiServer(config_map_status=404)
    async with fake_apiserver(fake, tmp_path) as kubeconfig:
        started = await DelegatedAuth.start(
            DelegatedAuthOptions(authentication_kubeconfig=str(kubeconfig), authorization_kubeconfig=str(kubeconfig)),
            environ={},
        )
        assert started is not None
        await started.close()

    assert started.config.client_ca is None


def test_config_map_keys_make_the_request_header_config(pki: Pki) -> None:
    data = {**pki.config_map(["front-proxy-client"]), "requestheader-uid-headers": '["X-Remote-Uid"]'}
    config = authentication_config(DelegatedAuthOptions(), data)

    assert config.client_ca is not None and config.client_ca.pem == pki.client_ca.cert_pem.bytes()
    header = config.request_header
    assert header is not None
    assert header.authority.pem == pki.front_proxy_ca.cert_pem.bytes()
    assert (header.allowed_names, header.username_headers, header.group_headers) == (
        ("front-proxy-client",),
        ("X-Remote-User",),
        ("X-Remote-Group",),
    )
    assert (header.extra_headers_prefixes, header.uid_headers) == (("X-Remote-Extra-",), ("X-Remote-Uid",))


def test_malformed_config_map_list_is_reported_with_its_key(pki: Pki) -> None:
    data = {**pki.config_map([]), "requestheader-allowed-names": "front-proxy-client"}
    with pytest.raises(ValueError, match="key requestheader-allowed-names is not a JSON list"):
        authentication_config(DelegatedAuthOptions(), data)


# --------------------------------------------------------------------------------------------
# Flags


def parse_serve(*argv: str) -> DelegatedAuthOptions:
    import argparse

    parser = argparse.ArgumentParser()
    add_serve_flags(parser)
    return serve_options_from(parser.parse_args(list(argv))).auth


def test_flag_defaults_match_metrics_server() -> None:
    options = parse_serve()

    assert options == DelegatedAuthOptions()
    assert options.authorization_always_allow_paths == ("/healthz", "/readyz", "/livez")
    assert options.requestheader_username_headers == ("x-remote-user",)
    assert options.requestheader_group_headers == ("x-remote-group",)
    assert options.requestheader_extra_headers_prefix == ("x-remote-extra-",)
    assert options.authentication_token_webhook_cache_ttl_seconds == 10.0
    assert options.authorization_webhook_cache_authorized_ttl_seconds == 10.0
    assert options.authorization_webhook_cache_unauthorized_ttl_seconds == 10.0


def test_flags_parse_lists_and_durations() -> None:
    options = parse_serve(
        "--authorization-always-allow-paths=/metrics",
        "--requestheader-allowed-names=front-proxy-client,aggregator",
        "--authentication-token-webhook-cache-ttl=1m30s",
        "--authorization-webhook-cache-unauthorized-ttl=500ms",
        "--authentication-kubeconfig=/a",
        "--authorization-kubeconfig=/b",
        "--client-ca-file=/ca",
        "--authentication-tolerate-lookup-failure",
    )

    # Setting the list replaces the default: /healthz is no longer always allowed (trap 18).
    assert options.authorization_always_allow_paths == ("/metrics",)
    assert options.requestheader_allowed_names == ("front-proxy-client", "aggregator")
    assert options.authentication_token_webhook_cache_ttl_seconds == 90.0
    assert options.authorization_webhook_cache_unauthorized_ttl_seconds == 0.5
    assert (options.authentication_kubeconfig, options.authorization_kubeconfig, options.client_ca_file) == (
        "/a",
        "/b",
        "/ca",
    )
    assert options.authentication_tolerate_lookup_failure is True


# --------------------------------------------------------------------------------------------
# Request attributes and messages


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", NODES, {}, ("list", "nodes", "", "")),
        ("GET", f"{NODES}/node-a", {}, ("get", "nodes", "", "node-a")),
        ("GET", NODES, {"watch": "true"}, ("watch", "nodes", "", "")),
        ("GET", NODES, {"watch": "false"}, ("list", "nodes", "", "")),
        ("GET", NODES, {"fieldSelector": "metadata.name=node-b"}, ("list", "nodes", "", "node-b")),
        ("GET", "/apis/metrics.k8s.io/v1beta1/pods", {}, ("list", "pods", "", "")),
        ("GET", "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods", {}, ("list", "pods", "ns", "")),
        ("GET", "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods/p", {}, ("get", "pods", "ns", "p")),
        ("GET", "/apis/metrics.k8s.io/v1beta1/watch/namespaces/ns/pods", {}, ("watch", "pods", "ns", "")),
        ("DELETE", f"{NODES}/node-a", {}, ("delete", "nodes", "", "node-a")),
    ],
)
def test_metrics_api_paths_are_resource_requests(
    method: str, path: str, query: dict[str, str], expected: tuple[str, str, str, str]
) -> None:
    attributes = request_attributes(method, path, query)

    assert attributes.resource_request
    assert (attributes.api_group, attributes.api_version) == ("metrics.k8s.io", "v1beta1")
    assert (attributes.verb, attributes.resource, attributes.namespace, attributes.name) == expected


@pytest.mark.parametrize(
    "path", ["/apis", "/apis/metrics.k8s.io", "/apis/metrics.k8s.io/v1beta1", "/metrics", "/openapi/v2", "/"]
)
def test_other_paths_are_non_resource_requests(path: str) -> None:
    attributes = request_attributes("GET", path, {})

    assert not attributes.resource_request
    assert attributes.review_attributes() == {"nonResourceAttributes": {"path": path, "verb": "get"}}


def test_forbidden_messages_follow_the_apiserver() -> None:
    alice = UserInfo("alice")

    def message(method: str, path: str) -> str:
        return forbidden(alice, request_attributes(method, path, {})).message

    assert message("GET", NODES) == (
        'nodes.metrics.k8s.io is forbidden: User "alice" cannot list resource "nodes" in API group '
        '"metrics.k8s.io" at the cluster scope'
    )
    assert message("GET", "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods") == (
        'pods.metrics.k8s.io is forbidden: User "alice" cannot list resource "pods" in API group '
        '"metrics.k8s.io" in the namespace "ns"'
    )
    assert message("GET", "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods/p") == (
        'pods.metrics.k8s.io "p" is forbidden: User "alice" cannot get resource "pods" in API group '
        '"metrics.k8s.io" in the namespace "ns"'
    )
    assert message("GET", "/metrics") == 'forbidden: User "alice" cannot get path "/metrics"'
    with_reason = forbidden(alice, RequestAttributes("get", "/x"), "no RBAC policy matched")
    assert with_reason.message == 'forbidden: User "alice" cannot get path "/x": no RBAC policy matched'
    assert forbidden(alice, request_attributes("GET", f"{NODES}/n1", {})).document() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'nodes.metrics.k8s.io "n1" is forbidden: User "alice" cannot get resource "nodes" in API group '
        '"metrics.k8s.io" at the cluster scope',
        "reason": "Forbidden",
        "details": {"name": "n1", "group": "metrics.k8s.io", "kind": "nodes"},
        "code": 403,
    }


def test_always_allow_paths_match_exactly_or_by_prefix_star() -> None:
    allow = PathAllowList(["/healthz", "/debug/*"])

    assert [allow.allows(p) for p in ("/healthz", "/healthz/ping", "/debug/pprof", "/debug", "/readyz")] == [
        True,
        False,
        True,
        False,
        False,
    ]


# --------------------------------------------------------------------------------------------
# Review cache


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counting_review(answer: Callable[[int], str], delay: float = 0.0) -> tuple[list[int], Callable[[], Any]]:
    calls: list[int] = []

    async def review() -> str:
        calls.append(len(calls))
        await asyncio.sleep(delay)
        return answer(len(calls))

    return calls, review


async def test_cache_coalesces_concurrent_misses_and_expires() -> None:
    clock = FakeClock()
    cache: ReviewCache[str, str] = ReviewCache(lambda value: 10.0, clock)
    calls, review = counting_review(lambda n: f"answer-{n}", delay=0.01)

    together = await asyncio.gather(*(cache.get("k", review) for _ in range(4)))
    clock.now += 9.9
    cached = await cache.get("k", review)
    clock.now += 0.2
    expired = await cache.get("k", review)

    assert together == ["answer-1"] * 4
    assert (cached, expired, len(calls)) == ("answer-1", "answer-2", 2)


async def test_cache_does_not_keep_failures() -> None:
    cache: ReviewCache[str, str] = ReviewCache(lambda value: 10.0)
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        if attempts == 1:
            raise ConnectionError("apiserver unreachable")
        return "ok"

    first = await asyncio.gather(cache.get("k", flaky), cache.get("k", flaky), return_exceptions=True)
    second = await cache.get("k", flaky)

    assert [type(r) for r in first] == [ConnectionError, ConnectionError]
    assert (second, attempts) == ("ok", 2)
