"""Queries about IP pools and the addresses instances hold."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from gpucloud.domain.addresses import PoolShape, pool_shape
from gpucloud.store.tables import Instance, IpPool


def pools(session: Session, region_id: str | None = None) -> list[IpPool]:
    stmt = select(IpPool).order_by(IpPool.region_id, IpPool.family, IpPool.id)
    if region_id is not None:
        stmt = stmt.where(IpPool.region_id == region_id)
    return list(session.scalars(stmt))


def shape(pool: IpPool) -> PoolShape:
    return pool_shape(pool.network, pool.gateway, pool.first, pool.last)


# Built once and run as plain rows: a create asks both, and the ORM's share was most of their cost.
POOL_COLUMNS = (IpPool.network, IpPool.gateway, IpPool.first, IpPool.last)  # `parsed`'s arguments
POOL_ORDER = (IpPool.family, IpPool.id)  # how a region's pools are listed (IPv4 first)
_SHAPES = select(*POOL_COLUMNS).where(IpPool.region_id == bindparam("region")).order_by(*POOL_ORDER)
_IPV4_TAKEN = select(Instance.ipv4).where(Instance.region_id == bindparam("region"), Instance.ipv4.is_not(None))
_NEWEST_IPV4 = (select(Instance.ipv4).where(Instance.region_id == bindparam("region"), Instance.ipv4.is_not(None))
                .order_by(Instance.id.desc()).limit(1))  # ix_instances_region_id_id: one index step
# a create needs both: one round trip
_SHAPES_AND_NEWEST = _SHAPES.add_columns(_NEWEST_IPV4.scalar_subquery())
PROBES = (16, 256)  # how many addresses `taken_among` asks about in one statement: these sizes
# fixed lists of parameters, so each statement is compiled once (an expanding IN is re-rendered per call)
_TAKEN_AMONG = {n: select(Instance.ipv4).where(Instance.ipv4.in_([bindparam(f"a{i}") for i in range(n)]))
                for n in PROBES}


def shapes(session: Session, region_id: str) -> list[PoolShape]:
    """The region's pools, in the order `pools` lists them (parsed once per process per pool)."""
    return [parsed(*row) for row in session.connection().execute(_SHAPES, {"region": region_id})]


@lru_cache(maxsize=1024)
def parsed(network: str, gateway: str | None, first: str | None, last: str | None) -> PoolShape:
    """A pool's row as `PoolShape`, parsed once per process per pool."""
    return pool_shape(network, gateway, first, last)


def ipv4_taken(session: Session, region_id: str) -> set[str]:
    return {a for a in session.connection().scalars(_IPV4_TAKEN, {"region": region_id}) if a}


def shapes_and_newest(session: Session, region_id: str) -> tuple[list[PoolShape], str | None]:
    """`shapes`, and the IPv4 address of the region's newest instance that has one (where a
    create's search for a free address starts; None without pools), in one statement."""
    rows = session.connection().execute(_SHAPES_AND_NEWEST, {"region": region_id}).all()
    return [parsed(*row[:4]) for row in rows], rows[0][4] if rows else None


def taken_among(session: Session, addresses: list[str]) -> set[str]:
    """Which of these IPv4 addresses (1 to `PROBES[-1]` of them) an instance holds: lookups in
    the unique index on ipv4, one statement."""
    size = next((n for n in PROBES if 1 <= len(addresses) <= n), None)
    if size is None:
        raise ValueError(f"between 1 and {PROBES[-1]} addresses at a time, not {len(addresses)}")
    padded = addresses + addresses[-1:] * (size - len(addresses))
    return set(session.connection().scalars(_TAKEN_AMONG[size], {f"a{i}": a for i, a in enumerate(padded)}))


def ipv6_holders(session: Session, region_id: str) -> set[str]:
    return {a.split("/")[0] for a in session.scalars(select(Instance.ipv6).where(Instance.region_id == region_id)) if a}


def add(session: Session, region_id: str, pool: PoolShape, created_by: str) -> IpPool:
    row = IpPool(region_id=region_id, family=pool.family, network=str(pool.network), gateway=str(pool.gateway),
                 first=str(pool.first), last=str(pool.last), created_by=created_by)
    session.add(row)
    session.flush()
    return row
