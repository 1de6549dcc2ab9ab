"""Guest addresses, as arithmetic: what a pool may hand out, the order in which a create tries
IPv4 addresses, the SLAAC IPv6 address of an interface, and MACs. Pure: the store keeps pools and assignments,
and the database's unique keys have the last word on who holds what."""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAC_PREFIX = "52:54:00"  # QEMU's locally administered prefix: what libvirt itself would pick
SLAAC_PREFIX_LENGTH = 64


class PoolError(ValueError):
    """A pool that cannot be: the message names the part and why."""


@dataclass(frozen=True)
class PoolShape:
    """A pool as arithmetic: addresses `first`..`last` of `network`, routed by `gateway`."""

    family: str  # "ipv4" or "ipv6"
    network: Network
    gateway: Address
    first: Address
    last: Address

    @property
    def prefix(self) -> int:
        return self.network.prefixlen

    @property
    def size(self) -> int:
        """How many addresses it hands out (IPv4: the range less the gateway; IPv6: one per MAC)."""
        count = int(self.last) - int(self.first) + 1
        return count - (1 if int(self.first) <= int(self.gateway) <= int(self.last) else 0)

    def __contains__(self, address: object) -> bool:
        try:
            parsed = ipaddress.ip_address(str(address).split("/")[0])
        except ValueError:
            return False
        return parsed.version == self.network.version and int(self.first) <= int(parsed) <= int(self.last)


def pool_shape(network: str, gateway: str | None = None, first: str | None = None,
               last: str | None = None) -> PoolShape:
    """Check and complete a pool: by default the gateway is the network's first host address and
    the range is every host address after it. IPv6 pools are a /64 (SLAAC)."""
    try:
        net = ipaddress.ip_network(network, strict=True)
    except ValueError as exc:
        raise PoolError(f"network {network!r} is not a network in CIDR form ({exc})") from None
    family = "ipv4" if net.version == 4 else "ipv6"
    if family == "ipv6" and net.prefixlen != SLAAC_PREFIX_LENGTH:
        raise PoolError(f"an IPv6 pool is a /64 (guests take SLAAC addresses in it), not a /{net.prefixlen}")
    if family == "ipv4" and net.prefixlen > 30:
        raise PoolError(f"an IPv4 pool needs room for a gateway and guests: /{net.prefixlen} is too small")
    hosts_first = net.network_address + 1
    hosts_last = net.broadcast_address - (1 if family == "ipv4" else 0)
    gw = _address_in(net, gateway, "gateway") if gateway else hosts_first
    lo = _address_in(net, first, "first") if first else (gw + 1 if gw == hosts_first else hosts_first)
    hi = _address_in(net, last, "last") if last else hosts_last
    if family == "ipv4" and (int(lo) < int(hosts_first) or int(hi) > int(hosts_last)):
        raise PoolError(f"the range {lo}-{hi} includes {net}'s network or broadcast address")
    if int(lo) > int(hi):
        raise PoolError(f"first address {lo} comes after last address {hi}")
    shape = PoolShape(family, net, gw, lo, hi)
    if shape.size < 1:
        raise PoolError(f"the range {lo}-{hi} holds no address besides the gateway")
    return shape


def _address_in(net: Network, text: str, what: str) -> Address:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise PoolError(f"{what} {text!r} is not an address") from None
    if address not in net:
        raise PoolError(f"{what} {address} is not in {net}")
    return address


def overlaps(a: PoolShape, b: PoolShape) -> bool:
    """Whether two pools share addresses: one network is one pool (its range says which of its
    addresses guests get), so networks may not overlap at all."""
    return a.network.version == b.network.version and a.network.overlaps(b.network)


def ipv4_number(address: str) -> int:
    return int.from_bytes(socket.inet_aton(address), "big")


def ipv4_text(number: int) -> str:
    return socket.inet_ntoa(number.to_bytes(4, "big"))


def search_order(pools: Iterable[PoolShape], after: str | None) -> Iterator[tuple[PoolShape, int]]:
    """Every IPv4 address the pools hand out (gateways left out), as integers, each once, in
    the order a create tries them: from the one after `after` (the region's newest instance's)
    to the end of the pools, then round from the start up to `after`. So a region fills its
    pools in order, a freed address comes back once the rest are taken (as DHCP servers do),
    and a create finds a free address by looking at a few, not at every taken one."""
    v4 = [p for p in pools if p.family == "ipv4"]
    number = ipv4_number(after) if after and "." in after else None
    at = next((i for i, p in enumerate(v4) if number is not None and int(p.first) <= number <= int(p.last)), None)
    if number is None or at is None:
        ranges = [(p, int(p.first), int(p.last)) for p in v4]
    else:
        here = v4[at]
        ranges = [(here, number + 1, int(here.last)), *((p, int(p.first), int(p.last)) for p in v4[at + 1:] + v4[:at]),
                  (here, int(here.first), number)]
    for pool, lo, hi in ranges:
        gateway = int(pool.gateway)
        for candidate in range(lo, hi + 1):
            if candidate != gateway:
                yield pool, candidate


def new_mac() -> str:
    """A random locally administered MAC; the database's unique key refuses a repeat."""
    return MAC_PREFIX + ":" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


def slaac_address(pool: PoolShape, mac: str) -> str:
    """The address a guest configures for itself in an IPv6 /64 from its MAC (modified EUI-64)."""
    octets = [int(part, 16) for part in mac.split(":")]
    if len(octets) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    octets[0] ^= 0x02
    interface_id = int.from_bytes(bytes(octets[:3] + [0xFF, 0xFE] + octets[3:]), "big")
    return str(ipaddress.IPv6Address(int(pool.network.network_address) | interface_id))
