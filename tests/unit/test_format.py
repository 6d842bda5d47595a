"""Quantity and duration text exactly as Kubernetes prints it (apimachinery Quantity canonical form,
Go time.Duration.String()), through the native module."""

from __future__ import annotations

import pytest
from kubemetrics._native import format_cpu_quantity, format_duration, format_memory_quantity


@pytest.mark.parametrize(
    ("nanocores", "text"),
    [
        (286_479, "286479n"),
        (272_000_000, "272m"),
        (1_500_000_000, "1500m"),
        (1_000_000_000, "1"),
        (0, "0"),
        (1_000, "1u"),
        (2_931_024, "2931024n"),
        (487_558_164, "487558164n"),
        (9_559_630, "9559630n"),
        (64_000_000_000, "64"),
        (1_000_000_000_000, "1k"),
        (2**64 - 1, "18446744073709551610n"),
    ],
)
def test_cpu_is_decimal_si_in_its_shortest_exact_form(nanocores: int, text: str) -> None:
    assert format_cpu_quantity(nanocores) == text


@pytest.mark.parametrize(
    ("num_bytes", "text"),
    [
        (1000, "1k"),
        (512, "512"),
        (0, "0"),
        (1023, "1023"),
        (1024, "1Ki"),
        (12_533_760, "12240Ki"),
        (1_616_273_408, "1578392Ki"),
        (52_428_800, "50Mi"),
        (12_533_761, "12533761"),
        (732_212 * 1024, "732212Ki"),
        (22_244 * 1024, "22244Ki"),
        (2**30, "1Gi"),
        (3 * 2**40, "3Ti"),
    ],
)
def test_memory_is_binary_si_when_exact_plain_bytes_otherwise_and_decimal_below_1024(num_bytes: int, text: str) -> None:
    assert format_memory_quantity(num_bytes) == text


@pytest.mark.parametrize(
    ("nanos", "text"),
    [
        (15_004_000_000, "15.004s"),
        (60_513_000_000, "1m0.513s"),
        (60_000_000_000, "1m0s"),
        (150_000_000_000, "2m30s"),
        (10_000_000_000, "10s"),
        (30_000_000_000, "30s"),
        (1_500, "1.5µs"),
        (0, "0s"),
        (7, "7ns"),
        (250_000_000, "250ms"),
        (3_661_000_000_001, "1h1m1.000000001s"),
        (-1_500_000_000, "-1.5s"),
        (2**63 - 1, "2562047h47m16.854775807s"),
    ],
)
def test_duration_is_go_duration_string(nanos: int, text: str) -> None:
    assert format_duration(nanos) == text


def test_micro_sign_is_u00b5_not_greek_mu() -> None:
    assert format_duration(1_500).encode() == b"1.5\xc2\xb5s"


def test_quantities_refuse_negative_values() -> None:
    with pytest.raises(OverflowError):
        format_cpu_quantity(-1)
    with pytest.raises(OverflowError):
        format_memory_quantity(-1)
