"""Ways a simulated kubelet misbehaves, set per node on the command line or at run time.

Spelling (flags and the control endpoint): `KIND[:ARG]`

- `latency:SECONDS` — answer normally, SECONDS late.
- `http500` — `500 Internal Error: …` as text, as the kubelet's handleError writes it.
- `hang` — accept the connection and read the request, never answer.
- `garbage` — `200` with random bytes that are not JSON.
- `truncated` — `200` with a well-framed body that is the payload cut in half.
- `disconnect` — start a `200` response, send half the body, close the connection mid-body.
- `down` — stop listening: connections are refused.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class FaultKind(enum.Enum):
    LATENCY = "latency"
    HTTP500 = "http500"
    HANG = "hang"
    GARBAGE = "garbage"
    TRUNCATED = "truncated"
    DISCONNECT = "disconnect"
    DOWN = "down"


class FaultSpecError(ValueError):
    """A fault spelled wrongly; the message says what is accepted."""


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    # Seconds of delay for LATENCY; unused otherwise.
    seconds: float = 0.0

    def __str__(self) -> str:
        if self.kind is FaultKind.LATENCY:
            return f"latency:{self.seconds:g}"
        return str(self.kind.value)


_KINDS = ", ".join(f"{k.value}:SECONDS" if k is FaultKind.LATENCY else k.value for k in FaultKind)


def parse_fault(text: str) -> Fault:
    name, _, argument = text.strip().partition(":")
    try:
        kind = FaultKind(name.strip().lower())
    except ValueError:
        raise FaultSpecError(f"unknown fault {text!r}; expected one of {_KINDS}") from None
    if kind is FaultKind.LATENCY:
        try:
            seconds = float(argument)
        except ValueError:
            raise FaultSpecError(f"fault {text!r}: latency needs seconds, e.g. latency:2.5") from None
        if not 0 <= seconds <= 3600:
            raise FaultSpecError(f"fault {text!r}: latency should be within 0-3600 seconds")
        return Fault(kind, seconds)
    if argument:
        raise FaultSpecError(f"fault {text!r}: {kind.value} takes no argument")
    return Fault(kind)


def parse_node_fault(text: str) -> tuple[str, Fault]:
    """`NODE=KIND[:ARG]` (NODE is a node name or index)."""
    node, separator, fault = text.partition("=")
    if not separator or not node.strip():
        raise FaultSpecError(f"--fault {text!r}: expected NODE=KIND[:ARG], e.g. sim-node-3=http500")
    return node.strip(), parse_fault(fault)


def parse_fault_fraction(text: str) -> tuple[Fault, float]:
    """`KIND[:ARG]=FRACTION`."""
    fault, separator, fraction_text = text.rpartition("=")
    if not separator:
        raise FaultSpecError(f"--fault-fraction {text!r}: expected KIND[:ARG]=FRACTION, e.g. http500=0.01")
    try:
        fraction = float(fraction_text)
    except ValueError:
        raise FaultSpecError(f"--fault-fraction {text!r}: {fraction_text!r} is not a number") from None
    if not 0.0 <= fraction <= 1.0:
        raise FaultSpecError(f"--fault-fraction {text!r}: the fraction should be within [0, 1]")
    return parse_fault(fault), fraction


def nodes_for_fraction(seed: int, fault: Fault, fraction: float, node_names: Iterable[str]) -> list[str]:
    """The nodes a seeded draw gives `fault` to: each node independently with probability `fraction`."""
    chosen = []
    for name in node_names:
        digest = hashlib.blake2b(f"{seed}/fault/{fault}/{name}".encode(), digest_size=8).digest()
        if int.from_bytes(digest, "little") / 2**64 < fraction:
            chosen.append(name)
    return chosen


def initial_faults(
    seed: int,
    node_names: list[str],
    explicit: Iterable[tuple[str, Fault]],
    fractions: Iterable[tuple[Fault, float]],
) -> dict[str, Fault]:
    """Faults at start: drawn by fraction first, then explicit ones (which win)."""
    known = set(node_names)
    faults: dict[str, Fault] = {}
    for fault, fraction in fractions:
        for name in nodes_for_fraction(seed, fault, fraction, node_names):
            faults[name] = fault
    for node, fault in explicit:
        name = _resolve_node(node, node_names, known)
        faults[name] = fault
    return faults


def _resolve_node(node: str, node_names: list[str], known: set[str]) -> str:
    if node in known:
        return node
    if node.isdigit() and int(node) < len(node_names):
        return node_names[int(node)]
    raise FaultSpecError(f"--fault: no simulated node {node!r} (nodes are {node_names[0]}..{node_names[-1]})")


def describe(faults: Mapping[str, Fault]) -> dict[str, str]:
    return {node: str(fault) for node, fault in sorted(faults.items())}
