"""Flag parsing and validation rules shared with metrics-server, and the worker count."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kubemetrics.options import KubeletOptions, OptionsError, ServeOptions, parse_duration, usable_cpus


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15.0), ("1m0s", 60.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("0", 0.0), ("1.5s", 1.5)],
)
def test_go_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_resolution_below_ten_seconds_is_refused() -> None:
    with pytest.raises(OptionsError, match="at least 10s"):
        ServeOptions(metric_resolution_seconds=5, inventory_file="x").validate()


def test_resolution_must_cover_the_kubelet_timeout_over_nine_tenths() -> None:
    # metrics-server rejects 10s with its default 10s kubelet timeout.
    with pytest.raises(OptionsError, match="larger than kubelet-request-timeout"):
        ServeOptions(metric_resolution_seconds=10, inventory_file="x").validate()
    ServeOptions(
        metric_resolution_seconds=10, inventory_file="x", kubelet=KubeletOptions(request_timeout_seconds=9)
    ).validate()


def test_insecure_tls_and_a_kubelet_ca_conflict() -> None:
    with pytest.raises(OptionsError, match="cannot use both"):
        KubeletOptions(insecure_tls=True, certificate_authority="/ca.crt").validate()


def test_unknown_kubelet_endpoint_is_refused() -> None:
    with pytest.raises(OptionsError, match="--kubelet-endpoint"):
        KubeletOptions(endpoint="cadvisor").validate()


def test_worker_count_follows_a_cgroup_cpu_quota(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("150000 100000\n")
    assert usable_cpus(str(cpu_max)) == min(2, len(os.sched_getaffinity(0)))
    cpu_max.write_text("max 100000\n")
    assert usable_cpus(str(cpu_max)) == len(os.sched_getaffinity(0))
    assert usable_cpus(str(tmp_path / "absent")) == len(os.sched_getaffinity(0))
    assert ServeOptions(workers=3).worker_count == 3
