"""The benchmark scripts still run (tiny budget); their figures are never asserted."""

from __future__ import annotations

from harness import fixture_path

from benchmarks import decoders


def test_decoder_benchmark_covers_every_decodable_fixture() -> None:
    rows = decoders.run(seconds_per_case=0.001)
    summary = sorted(p.name for p in fixture_path("kubelet", "summary").glob("*.json"))
    resource = sorted(p.name for p in fixture_path("kubelet", "resource").glob("*.prom"))
    assert sorted(str(r["fixture"]) for r in rows if r["endpoint"] == "summary") == summary
    assert sorted(str(r["fixture"]) for r in rows if r["endpoint"] == "resource") == resource
    for row in rows:
        assert float(row["rust_us"]) > 0 and float(row["baseline_us"]) > 0  # type: ignore[arg-type]


def test_store_benchmark_serves_every_pod_it_ingested() -> None:
    from benchmarks import store

    shape = store.Shape(nodes=20, pods_per_node=5, containers_per_pod=2)
    figures = store.measure(shape, seconds=0.001)
    assert figures.served_pods == 100
    assert set(figures.renders) == {"full list JSON", "full list protobuf", "namespace list JSON", "single pod JSON"}
    full, namespace, single = (
        figures.renders[name][2] for name in ("full list JSON", "namespace list JSON", "single pod JSON")
    )
    # 100 pods over 50 namespaces: two per namespace.
    assert full > namespace > single > 0
