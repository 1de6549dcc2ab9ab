"""Instances' stats and transfer: the host sweep hands in the counters its host reports (every
`stats_sample_seconds`, at most), which become readings in a bounded ring per instance
(`stats_samples_kept`: a day at five minutes by default) and monthly transfer; the API reads
them back in Linode's shapes."""

from __future__ import annotations

from datetime import datetime, timedelta

from gpucloud.catalog import load_catalog
from gpucloud.clock import utcnow
from gpucloud.config import Settings
from gpucloud.domain import guest_stats
from gpucloud.domain.guest import instance_id_from_domain
from gpucloud.domain.guest_stats import Reading
from gpucloud.errors import NotFound
from gpucloud.hypervisor.base import DomainStats
from gpucloud.store import guest_stats as q
from gpucloud.store import instances as instance_store
from gpucloud.store.db import Database

STATS_WINDOW = timedelta(hours=24)


def _due(last: Reading | None, now: datetime, settings: Settings) -> bool:
    return last is None or (now - last.at).total_seconds() >= 0.9 * settings.stats_sample_seconds


def due(db: Database, settings: Settings, host_ids: list[int], now: datetime | None = None) -> set[int]:
    """Those of these hosts where some instance waits for a reading (one read for a whole
    shard of hosts: most checks need none)."""
    now = now or utcnow()
    with db.read() as s:
        guests = instance_store.guest_states(s, host_ids)
        last = q.latest(s, [g.id for g in guests])
    return {g.host_id for g in guests if _due(last.get(g.id), now, settings)}


def record(db: Database, settings: Settings, host_id: int, stats: list[DomainStats],
           now: datetime | None = None) -> int:
    """Readings of the host's domains that belong to instances there and are due; the traffic
    since each instance's last reading goes to its month. Returns how many were written."""
    now = now or utcnow()
    written = 0
    with db.write() as s:
        here = {i.id for i in instance_store.on_host(s, host_id)}
        last = q.latest(s, list(here))
        for st in stats:
            instance_id = instance_id_from_domain(st.name)
            if instance_id not in here or not _due(last.get(instance_id), now, settings):
                continue
            reading = Reading(now, st.vcpus, st.cpu_seconds, st.disk_ops, st.disk_bytes, st.net_rx_bytes,
                              st.net_tx_bytes)
            rx, tx = guest_stats.traffic(last.get(instance_id), reading)
            q.put(s, instance_id, guest_stats.ring_slot(now, settings.stats_sample_seconds,
                                                        settings.stats_samples_kept), reading)
            q.add_transfer(s, instance_id, now.strftime("%Y-%m"), rx, tx)
            written += 1
    return written


def stats(db: Database, account_id: int, instance_id: int, now: datetime | None = None) -> dict:
    """GET …/stats: the last 24 hours, in Linode's shape."""
    now = now or utcnow()
    with db.read() as s:
        instance = instance_store.owned(s, account_id, instance_id)
        if instance is None:
            raise NotFound()
        readings = q.since(s, instance.id, now - STATS_WINDOW)
        label = instance.label
    return {"data": guest_stats.series(readings),
            "title": f"linode.com - {label} (linode{instance_id}) - day (5 min avg)"}


def transfer(db: Database, account_id: int, instance_id: int, now: datetime | None = None) -> dict:
    """GET …/transfer: this month's outbound bytes against the plan's quota."""
    now = now or utcnow()
    with db.read() as s:
        instance = instance_store.owned(s, account_id, instance_id)
        if instance is None:
            raise NotFound()
        row = q.transfer(s, instance.id, now.strftime("%Y-%m"))
        plan = load_catalog().plan(instance.type_id)
    return guest_stats.transfer(row.tx_bytes if row else 0, plan.transfer_gb if plan else 0)


def transfer_month(db: Database, account_id: int, instance_id: int, year: int, month: int) -> dict:
    """GET …/transfer/{year}/{month}: bytes in and out in that month (zero before readings began)."""
    with db.read() as s:
        instance = instance_store.owned(s, account_id, instance_id)
        if instance is None:
            raise NotFound()
        row = q.transfer(s, instance.id, f"{year:04d}-{month:02d}")
        rx, tx = (row.rx_bytes, row.tx_bytes) if row else (0, 0)
    return {"bytes_in": rx, "bytes_out": tx, "bytes_total": rx + tx}
