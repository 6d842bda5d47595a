"""Flags the front applies itself: --tls-min-version and --tls-cipher-suites on the serving TLS context
(checked by handshakes in memory), and the inventory's node count deciding --self-metrics-max-nodes."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from kubemetrics._native import MetricsStore
from kubemetrics.api.certs import server_ssl_context, serving_cert
from kubemetrics.front import InventoryApplier, apply_serving_tls
from kubemetrics.ingest import WorkerRegistry
from kubemetrics.inventory import InventorySnapshot, NodeInfo
from kubemetrics.options import KubeletOptions, ServeOptions
from kubemetrics.planner import ShardPlanner
from kubemetrics.selfmetrics import SelfMetrics


def serving_context(tmp_path: Path, min_version: str = "", suites: tuple[str, ...] = ()) -> ssl.SSLContext:
    context = server_ssl_context(serving_cert(ServeOptions(cert_dir=str(tmp_path))))
    assert apply_serving_tls(context, min_version, suites) == []
    return context


def handshake(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> tuple[str | None, str | None]:
    """(TLS version, cipher) both sides agreed on; raises ssl.SSLError when they cannot agree."""
    client_in, client_out, server_in, server_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_context.wrap_bio(client_in, client_out, server_hostname="localhost")
    server = server_context.wrap_bio(server_in, server_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, side, outgoing, peer_incoming in (
            ("client", client, client_out, server_in),
            ("server", server, server_out, client_in),
        ):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            peer_incoming.write(outgoing.read())
        if all(done.values()):
            cipher = client.cipher()
            return client.version(), None if cipher is None else cipher[0]
    raise AssertionError("handshake did not finish")


def client_context(tmp_path: Path, maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tmp_path / "apiserver.crt"))
    context.maximum_version = maximum
    return context


def test_without_tls_flags_tls_1_2_and_1_3_are_served(tmp_path: Path) -> None:
    server = serving_context(tmp_path)
    assert handshake(server, client_context(tmp_path))[0] == "TLSv1.3"
    assert handshake(server, client_context(tmp_path, ssl.TLSVersion.TLSv1_2))[0] == "TLSv1.2"


def test_tls_min_version_13_refuses_a_tls_1_2_client(tmp_path: Path) -> None:
    server = serving_context(tmp_path, "VersionTLS13")
    assert handshake(server, client_context(tmp_path))[0] == "TLSv1.3"
    with pytest.raises(ssl.SSLError):
        handshake(server, client_context(tmp_path, ssl.TLSVersion.TLSv1_2))


def test_tls_cipher_suites_restrict_tls_1_2_to_the_named_suites(tmp_path: Path) -> None:
    # The generated serving certificate has an ECDSA key.
    server = serving_context(tmp_path, suites=("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",))
    client = client_context(tmp_path, ssl.TLSVersion.TLSv1_2)
    assert handshake(server, client) == ("TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384")
    client.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    with pytest.raises(ssl.SSLError):
        handshake(server, client)


def test_naming_only_tls_1_3_suites_leaves_tls_1_3_only(tmp_path: Path) -> None:
    server = serving_context(tmp_path, suites=("TLS_AES_128_GCM_SHA256",))
    assert server.minimum_version == ssl.TLSVersion.TLSv1_3
    with pytest.raises(ssl.SSLError):
        handshake(server, client_context(tmp_path, ssl.TLSVersion.TLSv1_2))


def test_suites_this_openssl_cannot_offer_are_named_in_a_warning(tmp_path: Path) -> None:
    context = server_ssl_context(serving_cert(ServeOptions(cert_dir=str(tmp_path))))
    warnings = apply_serving_tls(context, "", ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_RC4_128_SHA"))
    assert warnings == [
        f"--tls-cipher-suites: TLS_RSA_WITH_RC4_128_SHA not usable with {ssl.OPENSSL_VERSION}; not offered"
    ]
    with pytest.raises(ssl.SSLError, match=r"^\('--tls-cipher-suites: none of TLS_RSA_WITH_RC4_128_SHA is usable"):
        apply_serving_tls(context, "", ("TLS_RSA_WITH_RC4_128_SHA",))


def nodes(count: int) -> InventorySnapshot:
    return InventorySnapshot(nodes={f"node-{i}": NodeInfo(f"node-{i}", ()) for i in range(count)}, pods=None)


def test_the_inventory_node_count_switches_per_node_self_metrics() -> None:
    metrics = SelfMetrics(per_node_series_max_nodes=3)
    applier = InventoryApplier(MetricsStore(15.0), WorkerRegistry(ShardPlanner()), metrics, KubeletOptions())
    applier.apply(nodes(3))
    metrics.record_scrape("node-0", True, 0.05, 1_700_000_000.0)
    assert (
        metrics.registry.get_sample_value("metrics_server_kubelet_request_duration_seconds_count", {"node": "node-0"})
        == 1.0
    )

    applier.apply(nodes(4))
    assert metrics.per_node_series_kept is False
    assert (
        metrics.registry.get_sample_value("metrics_server_kubelet_request_duration_seconds_count", {"node": "node-0"})
        is None
    )

    applier.apply(nodes(2))
    assert metrics.per_node_series_kept is True
