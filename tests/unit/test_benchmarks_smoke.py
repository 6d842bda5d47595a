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
