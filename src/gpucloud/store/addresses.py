"""Queries about IP pools and the addresses instances hold."""

from __future__ import annotations

from sqlalchemy import select
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


def shapes(session: Session, region_id: str) -> list[PoolShape]:
    return [shape(p) for p in pools(session, region_id)]


def ipv4_taken(session: Session, region_id: str) -> set[str]:
    return {a for a in session.scalars(select(Instance.ipv4).where(Instance.region_id == region_id)) if a}


def ipv6_holders(session: Session, region_id: str) -> set[str]:
    return {a.split("/")[0] for a in session.scalars(select(Instance.ipv6).where(Instance.region_id == region_id)) if a}


def add(session: Session, region_id: str, pool: PoolShape, created_by: str) -> IpPool:
    row = IpPool(region_id=region_id, family=pool.family, network=str(pool.network), gateway=str(pool.gateway),
                 first=str(pool.first), last=str(pool.last), created_by=created_by)
    session.add(row)
    session.flush()
    return row
