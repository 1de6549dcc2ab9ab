"""Queries about instances' counter readings (a ring per instance) and monthly transfer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gpucloud.domain.guest_stats import Reading
from gpucloud.store.tables import InstanceSample, InstanceTransfer


def reading(row: InstanceSample) -> Reading:
    return Reading(row.sampled_at, row.vcpus, row.cpu_seconds, row.disk_ops, row.disk_bytes, row.net_rx_bytes,
                   row.net_tx_bytes)


def latest(session: Session, instance_ids: list[int]) -> dict[int, Reading]:
    """The newest reading of each of these instances that has one."""
    if not instance_ids:
        return {}
    newest = (select(InstanceSample.instance_id, func.max(InstanceSample.sampled_at).label("at"))
              .where(InstanceSample.instance_id.in_(instance_ids)).group_by(InstanceSample.instance_id).subquery())
    rows = session.scalars(select(InstanceSample).join(
        newest, (InstanceSample.instance_id == newest.c.instance_id) & (InstanceSample.sampled_at == newest.c.at)))
    return {row.instance_id: reading(row) for row in rows}


def since(session: Session, instance_id: int, start: datetime) -> list[Reading]:
    rows = session.scalars(select(InstanceSample).where(InstanceSample.instance_id == instance_id,
                                                        InstanceSample.sampled_at >= start)
                           .order_by(InstanceSample.sampled_at))
    return [reading(row) for row in rows]


def put(session: Session, instance_id: int, slot: int, r: Reading) -> None:
    """Write the reading into its slot of the ring, over whatever was there a ring ago."""
    session.merge(InstanceSample(instance_id=instance_id, slot=slot, sampled_at=r.at, vcpus=r.vcpus,
                                 cpu_seconds=r.cpu_seconds, disk_ops=r.disk_ops, disk_bytes=r.disk_bytes,
                                 net_rx_bytes=r.net_rx_bytes, net_tx_bytes=r.net_tx_bytes))


def add_transfer(session: Session, instance_id: int, month: str, rx: int, tx: int) -> None:
    row = session.get(InstanceTransfer, (instance_id, month))
    if row is None:
        session.add(InstanceTransfer(instance_id=instance_id, month=month, rx_bytes=rx, tx_bytes=tx))
    else:
        row.rx_bytes += rx
        row.tx_bytes += tx


def transfer(session: Session, instance_id: int, month: str) -> InstanceTransfer | None:
    return session.get(InstanceTransfer, (instance_id, month))
