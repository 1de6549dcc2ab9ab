"""Guest addresses: the pools operators manage per region (`gpucloud ip`), the MAC and addresses
an instance is given at create, and the network its guest configures (cloud-init's
network-config, the API's `ips`).

An instance's IPv4 address is the next free one of its region's pools after the address of
the region's newest instance (round to the start at the end: `domain.addresses.search_order`),
chosen in the create transaction under the region's placement lock and held by the unique key
on `instances.ipv4`; its IPv6 address is the SLAAC address of its MAC (unique too) in the
region's IPv6 pool. Both are freed with the instance row, which goes only once its host
confirmed the domain gone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

from sqlalchemy.orm import Session

from gpucloud.catalog import load_catalog
from gpucloud.domain.addresses import (
    PoolError,
    PoolShape,
    ipv4_number,
    ipv4_text,
    new_mac,
    overlaps,
    pool_shape,
    search_order,
    slaac_address,
)
from gpucloud.domain.guest import GuestNetwork
from gpucloud.errors import GpucloudError, ValidationErrors
from gpucloud.services.placing import NO_CAPACITY_PREFIX
from gpucloud.store import addresses as q
from gpucloud.store import audit
from gpucloud.store import instances as instance_rows
from gpucloud.store.addresses import PROBES
from gpucloud.store.db import Database
from gpucloud.store.tables import Instance, IpPool


class NoAddress(GpucloudError):
    """The region's IPv4 pools are all assigned."""


@dataclass(frozen=True)
class PoolUsage:
    id: int
    region: str
    family: str
    network: str
    gateway: str
    first: str
    last: str
    size: int  # addresses it can hand out (IPv6: one per guest, practically unbounded)
    assigned: int

    @property
    def free(self) -> int:
        return self.size - self.assigned


def add_pool(db: Database, region: str, network: str, *, gateway: str | None = None, first: str | None = None,
             last: str | None = None, actor: str) -> PoolUsage:
    """A new range of guest addresses in a region. Refused when it overlaps any pool (addresses
    are unique across regions)."""
    if load_catalog().region(region) is None:
        raise ValidationErrors([("region", f"unknown region {region!r}")])
    try:
        shape = pool_shape(network, gateway, first, last)
    except PoolError as exc:
        raise ValidationErrors([("network", str(exc))]) from None
    with db.write() as s:
        for other in q.pools(s):
            if overlaps(shape, q.shape(other)):
                raise ValidationErrors([("network", f"{shape.first}-{shape.last} overlaps pool {other.id} "
                                                    f"({other.first}-{other.last} in {other.region_id})")])
        if shape.family == "ipv6" and any(p.family == "ipv6" for p in q.pools(s, region)):
            raise ValidationErrors([("network", f"{region} has an IPv6 pool already; guests take one SLAAC "
                                                "address each, so one /64 is enough")])
        row = q.add(s, region, shape, created_by=actor)
        audit.record(s, actor=actor, action="ip_pool.add", target_type="ip_pool", target_id=row.id, before=None,
                     after={"region": region, "network": row.network, "gateway": row.gateway, "first": row.first,
                            "last": row.last}, why="")
        return _usage(row, shape, q.ipv4_taken(s, region))


def pools(db: Database, region: str | None = None) -> list[PoolUsage]:
    """Every pool (of one region) with how many of its addresses instances hold."""
    with db.read() as s:
        rows = q.pools(s, region)
        taken = {r: q.ipv4_taken(s, r) for r in {p.region_id for p in rows}}
        v6_guests = {r: q.ipv6_holders(s, r) for r in {p.region_id for p in rows if p.family == "ipv6"}}
    return [_usage(p, q.shape(p), taken[p.region_id] if p.family == "ipv4" else v6_guests[p.region_id]) for p in rows]


def _usage(row: IpPool, shape: PoolShape, held: set[str]) -> PoolUsage:
    assigned = sum(1 for address in held if address in shape)
    return PoolUsage(row.id, row.region_id, row.family, row.network, row.gateway, row.first, row.last, shape.size,
                     assigned)


def write_new(s: Session, instance: Instance) -> int:
    """Give a new instance its MAC and addresses and write its row, in the create's transaction
    (under the region's placement lock; the unique keys refuse a repeat whatever happens
    above); its id. The IPv4 address is the first free one in `search_order`. The INSERT itself
    tries the first candidate (ON CONFLICT (ipv4) DO NOTHING): in a region filling its pools
    in order it is free, and a create asks nothing more. When it was taken, the next 16
    candidates, then the 256 after them, are looked up in the unique index (a statement each);
    only when all of those are taken (no hole that near: pools all but full) is every taken
    address of the region read, once. So a create's cost does not grow with the region's
    instances."""
    shapes, newest = q.shapes_and_newest(s, instance.region_id)
    order = search_order(shapes, newest)
    instance.mac = new_mac()
    v6 = next((p for p in shapes if p.family == "ipv6"), None)
    instance.ipv6 = f"{slaac_address(v6, instance.mac)}/128" if v6 is not None else None
    first = next(order, None)
    if first is not None:
        instance.ipv4 = ipv4_text(first[1])
        written = instance_rows.insert_new_unless_address_taken(s, instance)
        if written is not None:
            return written
    instance.ipv4 = _next_free(s, instance.region_id, order)
    if instance.ipv4 is None:
        total = sum(p.size for p in shapes if p.family == "ipv4")
        raise NoAddress(f"{NO_CAPACITY_PREFIX}: every IPv4 address of {instance.region_id} is assigned "
                        f"({total} in its pools); operators add more with `gpucloud ip add`", field="region")
    return instance_rows.insert_new(s, instance)


def _next_free(s: Session, region_id: str, order: Iterator[tuple[PoolShape, int]]) -> str | None:
    """The first address of `order` no instance holds: `PROBES` in the unique index, then
    (past them) every taken address of the region, read once."""
    for size in PROBES:
        candidates = [ipv4_text(number) for _, number in islice(order, size)]
        taken = q.taken_among(s, candidates) if candidates else set()
        found = next((address for address in candidates if address not in taken), None)
        if found is not None or len(candidates) < size:
            return found
    held = {ipv4_number(a) for a in q.ipv4_taken(s, region_id) if "." in a}
    return next((ipv4_text(number) for _, number in order if number not in held), None)


class Addressed(Protocol):
    """What `network_in` reads of an instance: an `Instance`, or a job's `InstanceRow`."""

    @property
    def region_id(self) -> str: ...

    @property
    def ipv4(self) -> str | None: ...

    @property
    def ipv6(self) -> str | None: ...


def network_in(shapes: Sequence[PoolShape], instance: Addressed, mac: str) -> GuestNetwork:
    """What the guest configures: its interface (`mac`), addresses with their pools' prefix and
    gateway (`shapes`: the region's pools), and the region's resolvers."""
    region = load_catalog().region(instance.region_id)
    v4 = next((p for p in shapes if instance.ipv4 and instance.ipv4 in p), None)
    v6_address = (instance.ipv6 or "").split("/")[0]
    v6 = next((p for p in shapes if v6_address and v6_address in p), None)
    resolvers = [r for r in ((region.resolvers_ipv4 + "," + region.resolvers_ipv6) if region else "").split(",") if r]
    return GuestNetwork(
        mac=mac,
        ipv4=instance.ipv4, ipv4_prefix=v4.prefix if v4 else 32, ipv4_gateway=str(v4.gateway) if v4 else None,
        ipv6=v6_address or None, ipv6_prefix=v6.prefix if v6 else 128, ipv6_gateway=str(v6.gateway) if v6 else None,
        resolvers=tuple(resolvers),
    )


def network_of(db: Database, instance: Instance) -> GuestNetwork:
    """The gateways and prefixes of an instance's addresses (the API's `ips`; the MAC is left out)."""
    with db.read() as s:
        shapes = q.shapes(s, instance.region_id)
    return network_in(shapes, instance, instance.mac or "")
