"""Kubernetes resource quantities ("400m", "1.5", "64Mi", "1e3"), parsed exactly.

The grammar is apimachinery's resource.Quantity: a signed decimal number, then one of the binary
suffixes (Ki … Ei), the decimal ones (n, u, m, k, M, G, T, P, E) or a decimal exponent (e3, E-2).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE]?)")


class QuantityError(ValueError):
    """Not a Kubernetes quantity; the message quotes the text."""


def parse_quantity(text: str) -> Fraction:
    match = _QUANTITY.fullmatch(text.strip())
    if match is None:
        raise QuantityError(f"{text!r} is not a Kubernetes quantity (such as 250m, 1.5, 64Mi)")
    number, suffix = match.groups()
    value = Fraction(number)
    if suffix in _BINARY:
        return value * _BINARY[suffix]
    if suffix[:1] in ("e", "E"):
        return value * Fraction(10) ** int(suffix[1:])
    return value * _DECIMAL[suffix]


def cpu_nanocores(text: str) -> int:
    """A CPU quantity in nanocores (rounded up, as Quantity rounds values below its precision)."""
    nanocores = math.ceil(parse_quantity(text) * 10**9)
    if nanocores < 0:
        raise QuantityError(f"{text!r}: CPU usage should not be negative")
    return nanocores


def memory_bytes(text: str) -> int:
    """A memory quantity in bytes (rounded up)."""
    value = math.ceil(parse_quantity(text))
    if value < 0:
        raise QuantityError(f"{text!r}: memory should not be negative")
    return value
