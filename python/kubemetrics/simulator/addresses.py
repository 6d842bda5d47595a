"""Node i ↔ its own loopback address.

Linux routes all of 127.0.0.0/8 to the loopback interface, so every node can listen on its own
address at the kubelet port: node i gets the i-th address from the base on, skipping addresses whose
last octet is 0 or 255 (they look like network and broadcast addresses to some tools). Each /24 holds
254 nodes.
"""

from __future__ import annotations

import ipaddress

DEFAULT_BASE = ipaddress.IPv4Address("127.1.0.0")
_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
_PER_BLOCK = 254


def _first_usable(base: ipaddress.IPv4Address) -> int:
    value = int(base)
    last = value & 0xFF
    if last == 0:
        return value + 1
    if last == 255:
        return value + 2
    return value


def _usable_index(value: int) -> int:
    return (value >> 8) * _PER_BLOCK + (value & 0xFF) - 1


def node_address(base: ipaddress.IPv4Address, index: int) -> ipaddress.IPv4Address:
    position = _usable_index(_first_usable(base)) + index
    return ipaddress.IPv4Address(((position // _PER_BLOCK) << 8) + position % _PER_BLOCK + 1)


def check_range(base: ipaddress.IPv4Address, nodes: int) -> None:
    """Raise ValueError unless every node address stays inside 127.0.0.0/8."""
    first = node_address(base, 0)
    last = node_address(base, nodes - 1)
    if first not in _LOOPBACK or last not in _LOOPBACK or int(last) & 0xFF in (0, 255):
        raise ValueError(f"{nodes} nodes from {base} do not fit in 127.0.0.0/8 (the last would be {last})")
