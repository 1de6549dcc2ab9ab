"""Readings from host checks: only instances on that host, only when due, into a ring that never
grows past `stats_samples_kept`, with each reading's traffic added to its month."""

from __future__ import annotations

from datetime import datetime, timedelta

from gpucloud.hypervisor.base import DomainStats
from gpucloud.hypervisor.profile import load_profile
from gpucloud.services import accounts, guest_stats, hosts, instances
from gpucloud.store.tables import InstanceSample, InstanceTransfer
from tests.conftest import make_settings

T0 = datetime(2026, 11, 30, 23, 40)


def test_readings_fill_a_bounded_ring_and_the_months_transfer(store_db, tmp_path):
    settings = make_settings(tmp_path, store_db.url, stats_sample_seconds=300, stats_samples_kept=4)
    host = hosts.register_host(store_db, settings, name="stats-a", region="us-east", topology=load_profile("cpu-2s"),
                               driver="sim", profile="cpu-2s")
    account = accounts.create_account(store_db, "stats@example.com")
    inst = instances.create_instance(store_db, settings, account.id, account.username,
                                     instances.NewInstance(type="g6-nanode-1", region="us-east"))
    name = f"gpucloud-{inst.id}"

    def counters(n: int) -> list[DomainStats]:
        return [DomainStats(name, 1, 60.0 * n, 100 * n, 4096 * n, 1000 * n, 400 * n),
                DomainStats("gpucloud-999999", 1, 1, 1, 1, 1, 1),  # not an instance on this host
                DomainStats("someone-elses-vm", 1, 1, 1, 1, 1, 1)]

    assert guest_stats.due(store_db, settings, [host.id], T0) == {host.id}
    assert guest_stats.record(store_db, settings, host.id, counters(1), T0) == 1
    assert not guest_stats.due(store_db, settings, [host.id], T0 + timedelta(seconds=60))
    assert guest_stats.record(store_db, settings, host.id, counters(2), T0 + timedelta(seconds=60)) == 0
    for n in range(2, 10):  # 5-minute readings across midnight and the month's end
        guest_stats.record(store_db, settings, host.id, counters(n), T0 + timedelta(minutes=5 * (n - 1)))
    with store_db.read() as s:
        assert s.query(InstanceSample).filter_by(instance_id=inst.id).count() == 4
        months = {t.month: (t.rx_bytes, t.tx_bytes) for t in s.query(InstanceTransfer).filter_by(instance_id=inst.id)}
    assert months == {"2026-11": (4000, 1600), "2026-12": (5000, 2000)}  # 4 readings in November, 5 in December
    stats = guest_stats.stats(store_db, account.id, inst.id, T0 + timedelta(minutes=41))
    assert [round(v) for _, v in stats["data"]["cpu"]] == [20, 20, 20]  # 60 CPU-seconds per 300 s
    assert guest_stats.transfer(store_db, account.id, inst.id, T0 + timedelta(minutes=41))["used"] == 2000
